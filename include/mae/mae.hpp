// mae/mae.hpp — everything: #include <mae/mae.hpp>
#ifndef MAE_MAE_HPP
#define MAE_MAE_HPP

#include "attention.hpp"
#include "block.hpp"
#include "classifier.hpp"
#include "common.hpp"
#include "config.hpp"
#include "gemm.hpp"
#include "cross_entropy.hpp"
#include "layernorm.hpp"
#include "linear.hpp"
#include "linear_probe.hpp"
#include "loss.hpp"
#include "masking.hpp"
#include "mlp.hpp"
#include "model.hpp"
#include "optim.hpp"
#include "params.hpp"
#include "patch.hpp"
#include "pos_embed.hpp"
#include "progress.hpp"
#include "rng.hpp"
#include "safetensors.hpp"
#include "small_gemm.hpp"

#endif  // MAE_MAE_HPP
