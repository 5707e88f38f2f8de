// mae/mae.hpp — everything: #include <mae/mae.hpp>
#ifndef MAE_MAE_HPP
#define MAE_MAE_HPP

#include "attention.hpp"
#include "block.hpp"
#include "common.hpp"
#include "config.hpp"
#include "layernorm.hpp"
#include "linear.hpp"
#include "loss.hpp"
#include "masking.hpp"
#include "mlp.hpp"
#include "model.hpp"
#include "params.hpp"
#include "patch.hpp"
#include "pos_embed.hpp"
#include "rng.hpp"
#include "safetensors.hpp"

#endif  // MAE_MAE_HPP
