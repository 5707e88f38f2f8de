// mae/io/checkpoint.hpp — what mae's files say besides their tensors: every metadata key, written
// and read here only, and the state of a training run between two optimizer steps.
//
// A file written by mae is a safetensors file with the official state-dict names (weights),
// optionally the optimizer's state (optim.hpp: optimizer.exp_avg.<name>, ...), and string
// metadata under the keys below. The models write their identity (config, classifier), the
// trainers the run (RunState, the trajectory their options fix, the normalization), the tools
// what they add (classes, the encoder a fine-tuning started from, the features a probe read).
#ifndef MAE_IO_CHECKPOINT_HPP
#define MAE_IO_CHECKPOINT_HPP

#include "../core/common.hpp"
#include "safetensors.hpp"

#include <nlohmann/json.hpp>

#include <cstdio>
#include <cstdlib>
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace mae {

using Metadata = std::map<std::string, std::string>;

// Every key of mae's metadata, in one place.
namespace keys {
// the model
inline constexpr char config[] = "mae.config";                // Config::name() of the model it holds
inline constexpr char norm_pix_loss[] = "mae.norm_pix_loss";  // "1" or "0" (an MAE)
inline constexpr char classifier[] = "mae.classifier";        // "<config>,classes=K,global_pool|cls"
// the run (RunState)
inline constexpr char step[] = "mae.step";                                    // micro-batches done
inline constexpr char optimizer_steps[] = "mae.optimizer_steps";              // the optimizer's own count
inline constexpr char pending_micro_batches[] = "mae.pending_micro_batches";  // in an accumulation window
inline constexpr char lr[] = "mae.lr";                                        // the last learning rate, hex float
inline constexpr char rng[] = "mae.rng";                                      // the model's generator
inline constexpr char train[] = "mae.train";        // pretraining's trajectory (TrainOptions), JSON
inline constexpr char finetune[] = "mae.finetune";  // fine-tuning's trajectory, JSON
inline constexpr char epoch[] = "mae.epoch";
inline constexpr char test_accuracy[] = "mae.test_accuracy";
inline constexpr char normalize_mean[] = "mae.normalize_mean";  // per channel, JSON
inline constexpr char normalize_std[] = "mae.normalize_std";
inline constexpr char data[] = "mae.data";  // the images a run trains on (dataset_fingerprint), JSON
// what the tools add
inline constexpr char classes[] = "mae.classes";    // class names, JSON
inline constexpr char init[] = "mae.init";          // the checkpoint a fine-tuning started from
inline constexpr char files[] = "mae.files";        // the images of extracted features, JSON
inline constexpr char features[] = "mae.features";  // what a probe or extraction read
inline constexpr char linear_probe_batches_tracked[] = "mae.linear_probe.batches_tracked";
}  // namespace keys

// Refuses a file without `key` in its metadata: "not a <what> (no 'key' in its metadata)".
inline void require_metadata(const safetensors::File& f, const char* key, const std::string& what) {
  if (!f.metadata().count(key)) f.fail("not a " + what + " (no '" + key + "' in its metadata)");
}

// A string of a checkpoint's metadata, or nothing.
inline std::optional<std::string> metadata_value(const Metadata& meta, const char* key) {
  const auto it = meta.find(key);
  if (it == meta.end()) return std::nullopt;
  return it->second;
}

// --- the normalization a model was trained with ------------------------------------------
inline void write_normalization(Metadata& meta, const std::vector<double>& mean, const std::vector<double>& stddev) {
  meta[keys::normalize_mean] = nlohmann::json(mean).dump();
  meta[keys::normalize_std] = nlohmann::json(stddev).dump();
}
struct Normalization {
  std::vector<double> mean, stddev;
};
// A checkpoint's normalization, if it has one; `path` names it in errors. channels > 0: refused
// unless it has that many channels.
inline std::optional<Normalization> read_normalization(const Metadata& meta, const std::string& path,
                                                       Index channels = 0) {
  if (!meta.count(keys::normalize_mean) || !meta.count(keys::normalize_std)) return std::nullopt;
  Normalization n;
  try {
    n.mean = nlohmann::json::parse(meta.at(keys::normalize_mean)).get<std::vector<double>>();
    n.stddev = nlohmann::json::parse(meta.at(keys::normalize_std)).get<std::vector<double>>();
  } catch (const nlohmann::json::exception& e) {
    throw Error(path + ": corrupt normalization metadata (" + e.what() + ")");
  }
  if (channels > 0 &&
      (static_cast<Index>(n.mean.size()) != channels || static_cast<Index>(n.stddev.size()) != channels))
    throw Error(path + ": its normalization has " + std::to_string(n.mean.size()) + " channels, the model " +
                std::to_string(channels));
  return n;
}

// --- class names -------------------------------------------------------------------------
inline void write_classes(Metadata& meta, const std::vector<std::string>& classes) {
  meta[keys::classes] = nlohmann::json(classes).dump();
}
inline std::vector<std::string> read_classes(const Metadata& meta, const std::string& path) {
  if (!meta.count(keys::classes)) return {};
  try {
    return nlohmann::json::parse(meta.at(keys::classes)).get<std::vector<std::string>>();
  } catch (const nlohmann::json::exception& e) {
    throw Error(path + ": corrupt class names (" + e.what() + ")");
  }
}

// --- what a classifier checkpoint says about itself ----------------------------------------
// "<config>,classes=K,global_pool" or "...,cls" (VisionTransformer::name())
inline std::string classifier_description(const std::string& config, Index classes, bool global_pool) {
  return config + ",classes=" + std::to_string(classes) + (global_pool ? ",global_pool" : ",cls");
}
struct ClassifierInfo {
  std::string config;
  Index classes = 0;
  bool global_pool = true;
  std::vector<std::string> class_names;  // the saved names, else "0", "1", ...
};
inline ClassifierInfo read_classifier_info(const Metadata& meta, const std::string& path) {
  const auto it = meta.find(keys::classifier);
  if (it == meta.end())
    throw Error(path + ": not a classifier checkpoint (no '" + keys::classifier +
                "' in its metadata; `mae finetune` writes classifier.safetensors)");
  ClassifierInfo c;
  const std::string& n = it->second;
  const auto k = n.find(",classes=");
  if (k == std::string::npos) throw Error(path + ": unreadable classifier description '" + n + "'");
  c.config = n.substr(0, k);
  c.classes = std::atoll(n.c_str() + k + 9);
  c.global_pool = n.find(",global_pool") != std::string::npos;
  if (c.classes < 1) throw Error(path + ": a classifier without classes ('" + n + "')");
  c.class_names = read_classes(meta, path);
  if (static_cast<Index>(c.class_names.size()) != c.classes) {
    c.class_names.clear();
    for (Index i = 0; i < c.classes; ++i) c.class_names.push_back(std::to_string(i));
  }
  return c;
}

// --- the trajectory a run's options fix ----------------------------------------------------
// A run's options that decide its trajectory (schedule, batch, masking, augmentation...), as
// JSON under `key` (keys::train or keys::finetune): a resume must have the same.
inline void write_trajectory(Metadata& meta, const char* key, const nlohmann::json& trajectory) {
  meta[key] = trajectory.dump();
}

// Entries a trajectory records that a resume may change: how the global batch is split over
// processes (the global batch itself is compared), and whether the random draws per image come
// from its position (what several processes always use; a trainer keeps it on once it was).
inline bool per_process_entry(const std::string& name) {
  return name == "batch_size" || name == "ranks" || name == "noise_by_position" || name == "drop_path_by_position";
}

// "64 (32 per process x 2 processes)" for a trajectory's global batch.
inline std::string global_batch_words(const nlohmann::json& t) {
  const long long ranks = t.value("ranks", 1LL), accum = t.value("accum_iter", 1LL);
  std::string s = t["global_batch"].dump() + " (" + t.value("batch_size", nlohmann::json("?")).dump() +
                  " per process x " + std::to_string(ranks) + (ranks == 1 ? " process" : " processes");
  return s + (accum > 1 ? " x " + std::to_string(accum) + " accumulated)" : ")");
}

// Refuses a checkpoint whose trajectory (as `ours`, from the same trainer) differs in an entry
// that is not per_process_entry, naming it; returns the checkpoint's trajectory. The global
// batch is compared, so a run may resume on another number of processes at the same global
// batch. (Checkpoints from before "global_batch" was recorded: batch_size x ranks x accum_iter.)
inline nlohmann::json require_same_trajectory(const safetensors::File& f, const char* key, const nlohmann::json& ours,
                                              const std::string& what) {
  require_metadata(f, key, "checkpoint of this kind of run");
  nlohmann::json saved;
  try {
    saved = nlohmann::json::parse(f.metadata().at(key));
    if (!saved.contains("global_batch") && saved.contains("batch_size"))
      saved["global_batch"] =
          saved["batch_size"].get<long long>() * saved.value("ranks", 1LL) * saved.value("accum_iter", 1LL);
  } catch (const nlohmann::json::exception& e) {
    f.fail(std::string("corrupt ") + key + " metadata: " + e.what());
  }
  for (const auto& [name, value] : ours.items()) {
    if (per_process_entry(name) || (saved.contains(name) && saved[name] == value)) continue;
    const bool batch = name == "global_batch" && saved.contains(name);
    f.fail("checkpoint was " + what + " with " + name + " = " +
           (batch                  ? global_batch_words(saved)
            : saved.contains(name) ? saved[name].dump()
                                   : "?") +
           ", this run has " + (batch ? global_batch_words(ours) : value.dump()) +
           ": resuming would not continue the same run");
  }
  return saved;
}

// --- a run between two optimizer steps ---------------------------------------------------
// Beside the weights and the optimizer's own state: where the run is and its generator.
struct RunState {
  Index step = 0;                   // micro-batches done
  Index pending_micro_batches = 0;  // since the last optimizer step (their gradient is saved as a tensor)
  std::optional<double> lr;         // the learning rate of the last step (pretraining keeps it)
  std::string rng;                  // the model's generator (Rng::state())

  void write(Metadata& meta) const {
    meta[keys::step] = std::to_string(step);
    if (lr) {  // pretraining: the learning rate and the accumulation window
      meta[keys::pending_micro_batches] = std::to_string(pending_micro_batches);
      char hex[32];
      std::snprintf(hex, sizeof hex, "%a", *lr);  // hex float: exact
      meta[keys::lr] = hex;
    }
    meta[keys::rng] = rng;
  }
  // with_lr: a pretraining checkpoint (it has the learning rate and the pending micro-batches)
  static RunState read(const safetensors::File& f, bool with_lr, const std::string& what) {
    const auto& meta = f.metadata();
    std::vector<const char*> required = {keys::step, keys::rng};
    if (with_lr) required.push_back(keys::pending_micro_batches), required.push_back(keys::lr);
    for (const char* key : required) require_metadata(f, key, what + " checkpoint");
    RunState s;
    s.step = std::stoll(meta.at(keys::step));
    if (with_lr) {
      s.pending_micro_batches = std::stoll(meta.at(keys::pending_micro_batches));
      s.lr = std::strtod(meta.at(keys::lr).c_str(), nullptr);
    }
    s.rng = meta.at(keys::rng);
    return s;
  }
};

}  // namespace mae

#endif  // MAE_IO_CHECKPOINT_HPP
