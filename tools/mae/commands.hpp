// The `mae` subcommands, one file each in commands/, each a function template of the model
// configuration: a preset's translation unit (preset.cpp.in) instantiates them, main.cpp picks
// the preset by --model. The work is the library's (Trainer, Finetuner, evaluate, predict,
// FeatureExtractor, fit_linear_probe, knn_classify); a command wires data, files and reports.
#pragma once

#include "commands/attention.hpp"
#include "commands/eval.hpp"
#include "commands/export.hpp"
#include "commands/extract.hpp"
#include "commands/finetune.hpp"
#include "commands/knn.hpp"
#include "commands/predict.hpp"
#include "commands/pretrain.hpp"
#include "commands/probe.hpp"
#include "commands/reconstruct.hpp"
