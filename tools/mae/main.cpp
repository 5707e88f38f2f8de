// mae — pretrain a Masked Autoencoder on your images, fine-tune, probe, evaluate, predict,
// extract features, draw reconstructions and attention, export to Hugging Face and timm.
// `mae --help`, `mae <command> --help`.
//
//   mae presets
//   mae pretrain --data fashion-mnist --out runs/fashion_mnist
//   mae pretrain --model vit_tiny_64x64_rgb --data ~/pictures --epochs 100 --out runs/pics
//   mae finetune --model vit_tiny_64x64_rgb --data ~/pictures --init runs/pics/mae_final.safetensors
//   mae eval --checkpoint runs/finetune/classifier.safetensors --data ~/pictures
//   mae predict --checkpoint runs/finetune/classifier.safetensors new_photos/ --out predictions.csv
//   mae attention --checkpoint runs/pics/mae_final.safetensors --data ~/pictures --out attention.png
//   mae export --checkpoint runs/finetune/classifier.safetensors --format timm --out my-vit
#include "args.hpp"
#include "commands/shards.hpp"
#include "data.hpp"
#include "presets.hpp"
#include "validators.hpp"

#include <CLI/CLI.hpp>

#ifdef MAE_TOOL_MPI
#include <mae/training/distributed.hpp>
#endif

#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <memory>
#include <string>
#include <thread>

#include <unistd.h>

namespace {

using namespace mae_tool;

const Preset& find_preset(const std::string& name) {
  for (const auto& p : presets())
    if (p.name == name) return p;
  std::string known;
  for (const auto& p : presets()) known += " " + p.name;
  throw mae::Error("no preset '" + name + "' (mae presets lists them:" + known + ")");
}

// --model, or the preset a checkpoint was saved from (its mae.config), or the default.
const Preset& choose_preset(const std::string& model, const std::string& checkpoint) {
  if (!model.empty()) return find_preset(model);
  if (!checkpoint.empty()) {
    const auto meta = metadata_of(checkpoint);
    const auto it = meta.find(mae::keys::config);
    if (it != meta.end()) {
      for (const auto& p : presets())
        if (p.config == it->second) return p;
      throw mae::Error(checkpoint + ": its configuration " + it->second +
                       " is not a preset of this program; build one with the library (README: Presets)");
    }
    // a Hugging Face or timm folder: the preset of its config.json's sizes (the decoder's too
    // when it gives them; the first preset of the encoder's otherwise)
    const auto matching = [&](const nlohmann::json& c,
                              const std::vector<std::pair<const char*, const int Preset::*>>& fields) -> const Preset& {
      for (const auto& p : presets()) {
        bool all = c.is_object();
        for (const auto& [field, member] : fields)
          all = all && (!c.contains(field) || (c[field].is_number() && c[field].get<double>() == p.*member));
        if (all) return p;
      }
      throw mae::Error(checkpoint + ": its config.json's sizes are no preset of this program; give --model");
    };
    if (const auto hf = meta.find(mae::interchange::kHuggingFaceConfig); hf != meta.end())
      return matching(nlohmann::json::parse(hf->second, nullptr, false),
                      {{"hidden_size", &Preset::embed_dim},
                       {"num_hidden_layers", &Preset::depth},
                       {"num_attention_heads", &Preset::num_heads},
                       {"decoder_hidden_size", &Preset::decoder_embed_dim},
                       {"decoder_num_hidden_layers", &Preset::decoder_depth},
                       {"image_size", &Preset::img_size},
                       {"patch_size", &Preset::patch_size},
                       {"num_channels", &Preset::in_chans}});
    if (const auto timm = meta.find(mae::interchange::kTimmConfig); timm != meta.end())
      return matching(mae::interchange::timm_model_args(nlohmann::json::parse(timm->second, nullptr, false)),
                      {{"embed_dim", &Preset::embed_dim},
                       {"depth", &Preset::depth},
                       {"num_heads", &Preset::num_heads},
                       {"img_size", &Preset::img_size},
                       {"patch_size", &Preset::patch_size},
                       {"in_chans", &Preset::in_chans}});
  }
  return find_preset("vit_tiny_28x28_gray");
}

// The number of processes mpirun started, from the launcher's environment (OpenMPI's, or a
// PMI launcher's such as srun); 1 when run directly.
int launched_processes() {
  for (const char* v : {"OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "PMIX_SIZE"})
    if (const char* n = std::getenv(v)) return std::max(1, std::atoi(n));
  return 1;
}

// libgomp's threads spin up to 300,000 times at every barrier before they sleep. Alone on its
// cores that is a little faster; beside a neighbour job, or with more ranks x threads than
// cores, a thread spins on a core its descheduled teammate needs and a 2-thread step runs
// slower than 1 thread (docs/performance.md, "Threads that share cores"). 1,000 spins keeps the
// speed alone and degrades to about the fair share when the cores are shared. libgomp reads its
// environment before main, so the program starts itself again with the setting; a user's own
// OMP_WAIT_POLICY or GOMP_SPINCOUNT is left alone (and if the exec fails, we go on as we are).
void default_openmp_wait(char** argv) {
  if (std::getenv("OMP_WAIT_POLICY") || std::getenv("GOMP_SPINCOUNT")) return;
  if (setenv("GOMP_SPINCOUNT", "1000", 1) != 0) return;
  execv("/proc/self/exe", argv);
  unsetenv("GOMP_SPINCOUNT");  // not in effect in this process: don't report it
}

int list_presets() {
  std::printf("%-28s %5s %5s %5s %-18s %-18s %12s  %s\n", "model", "image", "patch", "chans", "encoder (D/depth/h)",
              "decoder (D/depth/h)", "parameters", "for");
  for (const auto& p : presets()) {
    char enc[32], dec[32];
    std::snprintf(enc, sizeof enc, "%d/%d/%d", p.embed_dim, p.depth, p.num_heads);
    std::snprintf(dec, sizeof dec, "%d/%d/%d", p.decoder_embed_dim, p.decoder_depth, p.decoder_num_heads);
    std::printf("%-28s %5d %5d %5d %-19s %-19s %11.2fM  %s\n", p.name.c_str(), p.img_size, p.patch_size, p.in_chans,
                enc, dec, static_cast<double>(p.parameters) / 1e6, p.description.c_str());
  }
  return 0;
}

int cores() { return static_cast<int>(std::max(1u, std::thread::hardware_concurrency())); }

void add_model(CLI::App& c, std::string& model) {
  c.add_option("--model", model, "preset (mae presets); default: the checkpoint's own, else vit_tiny_28x28_gray");
}

// training: the options of pretrain and finetune; run_directory: the command writes a run
// directory (--out), where the image index is kept by default.
void add_data(CLI::App& c, DataArgs& d, bool training, bool run_directory) {
  c.add_option("--data", d.data,
               "fashion-mnist (Debian's dataset-fashion-mnist); a folder: DIR/train/<class>/*.png|jpg and "
               "DIR/val/<class>/* (pretraining also takes a flat folder); or WebDataset tar shards: "
               "'train-{000000..000099}.tar', one .tar, a directory of .tar files, or DIR/train/*.tar + DIR/val/*.tar");
  c.add_option("--val-data", d.val_data,
               "the validation images when --data names only the training shards (a pattern, .tar or directory)");
  c.add_option("--fashion-mnist-dir", d.fashion_mnist_dir, "where the Fashion-MNIST *.gz files are");
  c.add_option("--limit", d.limit, "use N evenly spaced training images (0: all)")->check(whole(0));
  c.add_option("--val-limit", d.val_limit, "use N evenly spaced validation images (0: all)")->check(whole(0));
  c.add_option("--max-side", d.max_side,
               "shrink images whose shorter side is longer, when read (0: 4 x model size; at least the model size)")
      ->check(whole(0));
  c.add_option("--max-pixels", d.max_pixels, "refuse images with more pixels (decompression bombs)")->check(whole(1));
  c.add_flag("--verify,!--no-verify", d.verify,
             "decode every image once before starting (off: each header is still read first, and a picture that "
             "does not decode stops the run when it is read, naming it; fix it and --resume)");
  c.add_option("--index", d.index,
               std::string("keep each image's header and the images' statistics in this file between runs, reading "
                           "again only the files that changed (") +
                   (run_directory ? "default: OUT/image_index.txt" : "default: none") + "; 'none': read every header)");
  if (training)
    c.add_option("--shuffle-buffer", d.shuffle_buffer,
                 "shards: samples mixed through a buffer of this many on their way into batches (1: the shards' "
                 "own order; shards are shuffled every epoch either way)")
        ->check(whole(1, 1 << 24));
  c.add_option("--normalize", d.normalize,
               "image statistics: auto (the checkpoint's, else the training images'), dataset, imagenet")
      ->check(CLI::IsMember({"auto", "dataset", "imagenet"}));
  c.add_option("--crop-pct", d.crop_pct,
               "evaluation transform: resize the shorter side to size / crop_pct, center crop (0: 0.875 up to 224 "
               "pixels, else 1, as the reference)")
      ->check(number(0, 1));
}

void add_run(CLI::App& c, RunArgs& r, const std::string& seed_help) {
  c.add_option("--seed", r.seed, seed_help);
  c.add_option("--threads", r.threads,
               "OpenMP threads (0: OMP_NUM_THREADS or all cores; at most 4 x the cores, a note above the cores)")
      ->check(whole(0, 4 * cores()));
  c.add_flag("!--no-progress", r.progress, "no progress bar or periodic lines");
}

template <class O>
void add_schedule(CLI::App& c, O& o, Index& global_batch, const std::string& blr_help) {
  c.add_option("--epochs", o.epochs, "epochs")->check(whole(1, 1000000));
  auto* batch =
      c.add_option("--batch", o.batch_size, "images per batch (per process under mpirun)")->check(whole(1, 1 << 20));
  c.add_option("--global-batch", global_batch,
               "images per batch over all processes, instead of --batch: each process takes its share, so one "
               "command line serves any number of processes (0: --batch)")
      ->check(whole(0, 1 << 24))
      ->excludes(batch);
  c.add_option("--blr", o.blr, blr_help)->check(number(0, 100, /*lo_open=*/true));
  c.add_option("--lr", o.lr, "absolute learning rate (overrides --blr; 0: from --blr)")->check(number(0, 100));
  c.add_option("--min-lr", o.min_lr, "final learning rate of the cosine schedule")->check(number(0, 100));
  c.add_option("--warmup-epochs", o.warmup_epochs, "linear warmup, in epochs (fractions allowed; shorter than the run)")
      ->check(number(0, 1000000));
  c.add_option("--weight-decay", o.weight_decay, "AdamW weight decay")->check(number(0, 100));
  c.add_option("--max-steps", o.max_steps, "stop (with a checkpoint to resume from) after this many steps in all")
      ->check(whole(1));
}

void add_saving(CLI::App& c, mae::SaveOptions& s, std::string& resume, const std::string& resume_help) {
  c.add_option("--resume", resume,
               resume_help +
                   "; auto: the newest valid checkpoint in --out if there is one, else a fresh start (one "
                   "command line for the first start and every restart)");
  c.add_option("--save-every-steps", s.every_steps, "a checkpoint every N steps as well as at epoch ends (0: off)")
      ->check(whole(0));
  c.add_option("--save-every-minutes", s.every_minutes, "a checkpoint every T minutes as well (0: off)")
      ->check(number(0, 1e6));
  c.add_option("--keep", s.keep,
               "checkpoints kept (checkpoint-<step>.safetensors; the newest is also checkpoint.safetensors)")
      ->check(whole(1, 1000));
}

// --resume auto, resolved in --out (the newest valid checkpoint, or "" for a fresh start);
// --init with a --resume PATH refused (with auto, --init serves the fresh start only).
void resolve_resume(std::string& resume, const std::string& init, const std::string& out) {
  const bool first = process_group().rank == 0;
  if (resume != "auto") {
    if (!resume.empty() && !init.empty())
      throw mae::Error(
          "--init starts a run from an encoder, --resume continues a run: give one of them (with "
          "--resume auto, --init is used when there is nothing to resume)");
    return;
  }
  resume = mae::newest_valid_checkpoint(out, [first](const std::string& why) {
    if (first) std::fprintf(stderr, "warning: passing over a checkpoint that does not open: %s\n", why.c_str());
  });
  if (!first) return;
  if (resume.empty())
    std::printf("--resume auto: no checkpoint in %s, starting fresh\n", out.c_str());
  else
    std::printf("--resume auto: %s%s\n", resume.c_str(), init.empty() ? "" : " (--init is for a fresh start: ignored)");
  std::fflush(stdout);
}

void add_features(CLI::App& c, FeatureArgs& f, bool tokens) {
  c.add_option("--checkpoint", f.checkpoint,
               "encoder: an MAE checkpoint (mae_final.safetensors, or converted official weights) or a classifier; "
               "none: random init");
  if (tokens)
    c.add_option("--pool", f.pool,
                 "cls (the normed cls token), avg (fc_norm of the patch-token mean), or tokens (every token of the "
                 "last block or of --block, cls first: features (N, 1+L, D))")
        ->check(CLI::IsMember({"cls", "avg", "tokens"}));
  else
    c.add_option("--pool", f.pool, "cls (the normed cls token) or avg (fc_norm of the patch-token mean)")
        ->check(CLI::IsMember({"cls", "avg"}));
  c.add_option("--block", f.block, "features of this block's output instead (1..depth; pooled by --pool, no norm)")
      ->check(whole(1, 1000));
}

}  // namespace

int main(int argc, char** argv) {
  default_openmp_wait(argv);
  // A closed pipe (mae pretrain ... | head) makes writes to stdout fail with EPIPE instead of
  // killing the run: what is left of the output is lost, the run finishes and writes its files.
  std::signal(SIGPIPE, SIG_IGN);
  CLI::App app{
      "mae: Masked Autoencoders (ViT) on the CPU. Pretrain on your images, fine-tune, probe, evaluate, "
      "predict, extract features, draw attention, export to Hugging Face and timm.\nmae <command> --help shows a "
      "command's options and defaults."};
  app.option_defaults()->always_capture_default();
  app.require_subcommand(1);
  app.set_version_flag("--version", "mae 0.1.0");
  std::function<int()> run;

  auto* presets_cmd = app.add_subcommand("presets", "list the compiled models: image size, patch, widths, depths");
  presets_cmd->callback([&] { run = list_presets; });

  // --- pretrain
  PretrainArgs pa;
  std::string pa_model;
  pa.train.epochs = 2, pa.train.batch_size = 128, pa.train.lr = 1.5e-3, pa.train.warmup_epochs = 0.5;
  pa.train.out_dir = "runs/pretrain";
  auto* pre = app.add_subcommand("pretrain",
                                 "pretrain an MAE (main_pretrain.py): checkpoint, log.csv, loss.png, "
                                 "reconstruction.png after every epoch");
  pre->option_defaults()->always_capture_default();
  add_model(*pre, pa_model);
  add_data(*pre, pa.data, true, true);
  add_schedule(*pre, pa.train, pa.run.global_batch,
               "base learning rate: lr = blr * global batch x accum / 256 (global batch: batch x processes)");
  pre->add_option("--accum", pa.train.accum_iter, "micro-batches per optimizer step (at most the steps of an epoch)")
      ->check(whole(1, 1 << 20));
  pre->add_option("--mask-ratio", pa.train.mask_ratio, "fraction of patches removed")->check(number(0, 0.999));
  pre->add_flag("--norm-pix-loss,!--no-norm-pix-loss", pa.norm_pix, "per-patch normalized pixel targets");
  pre->add_flag("--noise-by-position", pa.train.noise_by_position,
                "masking noise from each image's place in the epoch (always on under mpirun): one process then "
                "trains what R processes train at the same global batch");
  pre->add_flag("--bf16", pa.bf16, "bf16 mixed precision: the products in bf16, weights and the rest fp32");
  pre->add_option("--init", pa.init,
                  "start from this encoder (an MAE checkpoint or converted official weights, any image size); the "
                  "decoder starts fresh");
  add_saving(*pre, pa.train.save, pa.resume, "continue this run from a checkpoint of it (bit for bit)");
  pre->add_flag("--overwrite", pa.overwrite, "replace the run in --out (its checkpoint, weights, logs, figures)");
  pre->add_flag("--allow-other-data", pa.train.allow_other_data,
                "resume on images (or a normalization) other than the checkpoint's");
  pre->add_option("--out", pa.train.out_dir, "output directory")->check(output_directory());
  pre->add_option("--figure-images", pa.figure_images, "images in the reconstruction grid")->check(whole(1, 64));
  add_run(*pre, pa.run, "seed of initialization, data order, augmentation and masking");
  pre->callback([&] {
    run = [&] {
      resolve_resume(pa.resume, pa.init, pa.train.out_dir);
      return choose_preset(pa_model, pa.resume.empty() ? pa.init : pa.resume).pretrain(pa);
    };
  });

  // --- finetune
  FinetuneArgs fa;
  std::string fa_model;
  fa.ft.epochs = 4, fa.ft.batch_size = 128, fa.ft.blr = 2e-3, fa.ft.warmup_epochs = 0.5;
  fa.ft.out_dir = "runs/finetune";
  fa.crop_min = 0.5;
  auto* fin = app.add_subcommand("finetune",
                                 "fine-tune a ViT classifier end to end (main_finetune.py): "
                                 "classifier.safetensors, checkpoint.safetensors, log.csv, eval.csv");
  fin->option_defaults()->always_capture_default();
  add_model(*fin, fa_model);
  add_data(*fin, fa.data, true, true);
  add_schedule(*fin, fa.ft, fa.run.global_batch,
               "base learning rate: lr = blr * global batch / 256 (batch x processes)");
  fin->add_option("--init", fa.init,
                  "the encoder: an MAE checkpoint or converted official weights (another image size: pos_embed is "
                  "interpolated); none: from scratch");
  add_saving(*fin, fa.ft.save, fa.resume, "continue this fine-tuning from a checkpoint of it (bit for bit)");
  fin->add_flag("--overwrite", fa.overwrite, "replace the run in --out (its checkpoint, classifier, logs)");
  fin->add_flag("--allow-other-data", fa.ft.allow_other_data,
                "resume on images (or a normalization) other than the checkpoint's");
  fin->add_option("--pool", fa.pool, "avg (fc_norm of the patch-token mean, the reference's default) or cls")
      ->check(CLI::IsMember({"cls", "avg"}));
  fin->add_option("--layer-decay", fa.ft.layer_decay, "layer-wise lr decay (1: none)")
      ->check(number(0, 1, /*lo_open=*/true));
  fin->add_option("--drop-path", fa.drop_path, "drop path rate of the last block")->check(number(0, 0.99));
  fin->add_flag("--drop-path-by-position", fa.ft.drop_path_by_position,
                "drop path from each image's place in the epoch (always on under mpirun): one process then trains "
                "what R processes train at the same global batch");
  fin->add_flag("--bf16", fa.bf16, "bf16 mixed precision: the products in bf16, weights and the rest fp32");
  fin->add_option("--smoothing", fa.smoothing, "label smoothing")->check(number(0, 0.99));
  fin->add_option("--crop-min", fa.crop_min, "RandomResizedCrop's smallest area fraction (1: no crop)")
      ->check(number(0.05, 1));
  fa.ft.mixup.mixup_alpha = 0.8, fa.ft.mixup.cutmix_alpha = 1.0;  // the reference's recipe (FINETUNE.md)
  fin->add_option("--aa", fa.aa,
                  "RandAugment as timm's spec (rand-m9-mstd0.5-inc1: 2 ops, magnitude 9 +- 0.5), or none");
  fin->add_option("--reprob", fa.reprob, "random erasing probability (pixel mode, after normalization)")
      ->check(number(0, 1));
  fin->add_option("--mixup", fa.ft.mixup.mixup_alpha, "mixup alpha (0: off)")->check(number(0, 100));
  fin->add_option("--cutmix", fa.ft.mixup.cutmix_alpha, "cutmix alpha (0: off)")->check(number(0, 100));
  fin->add_option("--mixup-prob", fa.ft.mixup.prob, "probability of mixing a batch")->check(number(0, 1));
  fin->add_option("--mixup-switch-prob", fa.ft.mixup.switch_prob, "probability of cutmix instead of mixup when both")
      ->check(number(0, 1));
  fin->add_option("--clip-grad", fa.ft.clip_grad, "clip the gradients' L2 norm to this (0: off)")->check(number(0));
  fin->add_option("--out", fa.ft.out_dir, "output directory")->check(output_directory());
  add_run(*fin, fa.run, "seed of the head, data order, augmentation and drop path");
  fin->callback([&] {
    run = [&] {
      resolve_resume(fa.resume, fa.init, fa.ft.out_dir);
      return choose_preset(fa_model, fa.resume.empty() ? fa.init : fa.resume).finetune(fa);
    };
  });

  // --- probe
  ProbeArgs pr;
  std::string pr_model;
  auto* pro = app.add_subcommand("probe",
                                 "linear probe of a frozen encoder (main_linprobe.py): BatchNorm + linear, "
                                 "LARS; log.csv, probe.safetensors");
  pro->option_defaults()->always_capture_default();
  add_model(*pro, pr_model);
  add_data(*pro, pr.data, false, true);
  pro->add_option("--checkpoint", pr.checkpoint, "the encoder (an MAE checkpoint); none: random init");
  pro->add_flag("--raw-pixels", pr.raw_pixels, "probe the normalized pixels instead (logistic regression)");
  pro->add_option("--pool", pr.pool, "cls (norm(x)[:, 0], the reference's default) or avg")
      ->check(CLI::IsMember({"cls", "avg"}));
  pro->add_option("--block", pr.block, "probe this block's output instead (1..depth)")->check(whole(1, 1000));
  pro->add_option("--epochs", pr.probe.epochs, "epochs")->check(whole(1, 1000000));
  pro->add_option("--batch", pr.probe.batch_size, "batch size")->check(whole(2, 1 << 20));
  pro->add_option("--blr", pr.probe.blr, "base learning rate: lr = blr * batch / 256")
      ->check(number(0, 1000, /*lo_open=*/true));
  auto* probe_warmup =
      pro->add_option("--warmup-epochs", pr.probe.warmup_epochs,
                      "linear warmup, in epochs (shorter than the run; not given: the recipe's 10 of 90, scaled to "
                      "--epochs when that is 10 or fewer)")
          ->check(number(0, 1000000));
  pro->add_option("--weight-decay", pr.probe.weight_decay, "LARS weight decay")->check(number(0, 100));
  pro->add_option("--out", pr.out, "output directory")->check(output_directory());
  pro->add_flag("--overwrite", pr.overwrite, "replace the probe in --out");
  add_run(*pro, pr.run, "seed of a random encoder, the head and the data order");
  pro->callback([&] {
    // the recipe's warmup (10 of 90 epochs) would outlast a short probe: the same fraction then
    if (probe_warmup->count() == 0 && pr.probe.warmup_epochs >= pr.probe.epochs)
      pr.probe.warmup_epochs = pr.probe.epochs * 10.0 / 90.0, pr.warmup_scaled = true;
    run = [&] { return choose_preset(pr_model, pr.checkpoint).probe(pr); };
  });

  // --- eval
  EvalArgs ea;
  std::string ea_model;
  auto* ev = app.add_subcommand("eval",
                                "evaluate a classifier: top-1, top-5, per-class accuracy, mean loss, "
                                "confusion-matrix PNG");
  ev->option_defaults()->always_capture_default();
  add_model(*ev, ea_model);
  add_data(*ev, ea.data, false, false);
  ev->add_option("--checkpoint", ea.checkpoint, "classifier.safetensors of mae finetune")->required();
  ev->add_option("--split", ea.split, "train or val")->check(CLI::IsMember({"train", "val"}));
  ev->add_option("--out", ea.out,
                 "directory for eval_<split>.csv and confusion_<split>.png (default: the checkpoint's)")
      ->check(output_directory());
  ev->add_option("--batch", ea.batch, "images per forward")->check(whole(1, 1 << 16));
  add_run(*ev, ea.run, "unused (evaluation is deterministic)");
  ev->callback([&] { run = [&] { return choose_preset(ea_model, ea.checkpoint).eval(ea); }; });

  // --- predict
  PredictArgs pd;
  std::string pd_model;
  auto* pred = app.add_subcommand("predict", "label new images: a CSV of path, top-k labels and probabilities");
  pred->option_defaults()->always_capture_default();
  add_model(*pred, pd_model);
  pred->add_option("inputs", pd.inputs, "image files or folders (searched recursively)")->required();
  pred->add_option("--checkpoint", pd.checkpoint, "classifier.safetensors of mae finetune")->required();
  pred->add_option("--out", pd.out, "the CSV file (- : standard output)")->check(output_file());
  pred->add_option("--top", pd.topk, "labels per image")->check(whole(1, 1000));
  pred->add_option("--batch", pd.batch, "images per forward")->check(whole(1, 1 << 16));
  pred->add_option("--max-side", pd.data.max_side,
                   "shrink larger images when read (0: 4 x model size; at least the model size)")
      ->check(whole(0));
  pred->add_option("--max-pixels", pd.data.max_pixels, "refuse images with more pixels")->check(whole(1));
  pred->add_option("--crop-pct", pd.data.crop_pct, "evaluation transform's crop fraction (0: the reference's)")
      ->check(number(0, 1));
  pred->add_option("--normalize", pd.data.normalize, "auto (the checkpoint's statistics), dataset, imagenet")
      ->check(CLI::IsMember({"auto", "dataset", "imagenet"}));
  add_run(*pred, pd.run, "unused");
  pred->callback([&] { run = [&] { return choose_preset(pd_model, pd.checkpoint).predict(pd); }; });

  // --- extract
  ExtractArgs xa;
  std::string xa_model;
  auto* ext = app.add_subcommand("extract",
                                 "features of every image (N x D, or N x tokens x D) with labels and file names, as "
                                 "safetensors");
  ext->option_defaults()->always_capture_default();
  add_model(*ext, xa_model);
  add_data(*ext, xa.data, false, false);
  add_features(*ext, xa.features, /*tokens=*/true);
  ext->add_flag_callback(
      "--tokens", [&xa] { xa.features.pool = "tokens"; },
      "every token (N, 1+L, D): the same as --pool tokens; with --block, that block's");
  ext->add_option("--split", xa.split, "train or val")->check(CLI::IsMember({"train", "val"}));
  ext->add_option("--out", xa.out, "the safetensors file: features (N, D), labels (N), metadata mae.files")
      ->check(output_file());
  ext->add_option("--batch", xa.batch, "images per forward")->check(whole(1, 1 << 16));
  add_run(*ext, xa.run, "seed of a random encoder");
  ext->callback([&] { run = [&] { return choose_preset(xa_model, xa.features.checkpoint).extract(xa); }; });

  // --- shards
  ShardsArgs sa;
  auto* sh = app.add_subcommand("shards",
                                "write a folder of pictures as WebDataset tar shards (DIR/train, DIR/val -> "
                                "OUT/train/train-NNNNNN.tar, OUT/val/val-NNNNNN.tar, OUT/classes.txt)");
  sh->option_defaults()->always_capture_default();
  sh->add_option("--data", sa.data, "the folder (DIR/train/<class>/*, DIR/val/<class>/*, or any folder)")->required();
  sh->add_option("--out", sa.out, "a new directory for the shards")->required()->check(output_directory());
  sh->add_option("--per-shard", sa.per_shard, "images per shard")->check(whole(1, 1 << 24));
  sh->add_option("--max-pixels", sa.max_pixels, "refuse images with more pixels")->check(whole(1));
  sh->add_option("--seed", sa.run.seed,
                 "seed of the order the images are written in (shuffled, so that a shard "
                 "holds every class)");
  sh->callback([&] { run = [&] { return write_shards(sa); }; });

  // --- knn
  KnnArgs ka;
  std::string ka_model;
  auto* kn = app.add_subcommand("knn",
                                "weighted k-NN accuracy of an encoder's features (DINO's 20-NN vote): a "
                                "quick check of a pretraining checkpoint");
  kn->option_defaults()->always_capture_default();
  add_model(*kn, ka_model);
  add_data(*kn, ka.data, false, false);
  add_features(*kn, ka.features, /*tokens=*/false);
  kn->add_option("--k", ka.k, "neighbours")->check(whole(1, 100000));
  kn->add_option("--temperature", ka.temperature, "vote weight exp(cosine / T)")
      ->check(number(0, 1000, /*lo_open=*/true));
  kn->add_option("--batch", ka.batch, "images per forward")->check(whole(1, 1 << 16));
  add_run(*kn, ka.run, "seed of a random encoder");
  kn->callback([&] { run = [&] { return choose_preset(ka_model, ka.features.checkpoint).knn(ka); }; });

  // --- reconstruct
  ReconstructArgs ra;
  std::string ra_model;
  auto* rec = app.add_subcommand("reconstruct", "the MAE figure: original | masked | reconstruction | + visible");
  rec->option_defaults()->always_capture_default();
  add_model(*rec, ra_model);
  add_data(*rec, ra.data, false, false);
  rec->add_option("--checkpoint", ra.checkpoint, "an MAE checkpoint (with its decoder)")->required();
  rec->add_option("--split", ra.split, "train or val")->check(CLI::IsMember({"train", "val"}));
  rec->add_option("--images", ra.images, "rows of the figure")->check(whole(1, 256));
  rec->add_option("--mask-ratio", ra.mask_ratio, "fraction of patches removed")->check(number(0, 0.999));
  rec->add_option("--out", ra.out, "the PNG file")->check(output_file());
  add_run(*rec, ra.run, "seed of the masking");
  rec->callback([&] { run = [&] { return choose_preset(ra_model, ra.checkpoint).reconstruct(ra); }; });

  // --- export
  ExportArgs xp;
  std::string xp_model;
  auto* exp = app.add_subcommand(
      "export",
      "a checkpoint for other tools: an MAE, a fine-tuned classifier or a linear probe as a Hugging Face or "
      "timm folder");
  exp->option_defaults()->always_capture_default();
  add_model(*exp, xp_model);
  exp->add_option("--checkpoint", xp.checkpoint,
                  "an MAE checkpoint (mae_final.safetensors, checkpoint.safetensors), a classifier "
                  "(classifier.safetensors of mae finetune) or a linear probe (probe.safetensors)")
      ->required();
  exp->add_option("--format", xp.format,
                  "hf: ViTMAEForPreTraining (an MAE, with its decoder) or ViTForImageClassification (a classifier "
                  "on the cls token); timm: VisionTransformer (an MAE's encoder with num_classes 0; a classifier "
                  "with global_pool 'avg' or 'token')")
      ->check(CLI::IsMember({"hf", "timm"}));
  exp->add_option("--encoder", xp.encoder,
                  "a linear probe's encoder (default: the checkpoint its features were read from); its BatchNorm is "
                  "folded into the head");
  exp->add_option("--out", xp.out, "the folder to write")->required();
  exp->add_flag("--overwrite", xp.overwrite, "replace the files of a folder that is not empty");
  exp->callback([&] {
    run = [&] {
      const std::string encoder = xp.encoder.empty() ? probe_encoder(xp.checkpoint) : xp.encoder;
      return choose_preset(xp_model, encoder.empty() ? xp.checkpoint : encoder).export_model(xp);
    };
  });

  // --- attention
  AttentionArgs at;
  std::string at_model;
  auto* att = app.add_subcommand("attention",
                                 "where the encoder looks: the last block's cls-token attention per head and the "
                                 "attention rollout over the pictures (PNG grid), the maps as safetensors");
  att->option_defaults()->always_capture_default();
  add_model(*att, at_model);
  add_data(*att, at.data, false, false);
  att->add_option("--checkpoint", at.checkpoint,
                  "the encoder: an MAE checkpoint, a classifier, a Hugging Face or timm folder")
      ->required();
  att->add_option("--split", at.split, "train or val")->check(CLI::IsMember({"train", "val"}));
  att->add_option("--images", at.images, "rows of the figure: the split's first images")->check(whole(1, 256));
  att->add_option("--out", at.out, "the PNG: picture | rollout | head 1 .. head H per image")->check(output_file());
  att->add_option("--maps", at.maps,
                  "also write the maps: cls_attention (N, H, G, G), rollout (N, G, G), metadata mae.files")
      ->check(output_file());
  add_run(*att, at.run, "seed of a random encoder");
  att->callback([&] { run = [&] { return choose_preset(at_model, at.checkpoint).attention(at); }; });

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }
  const auto report = [](const std::exception& e) {
    std::fflush(stdout);
    std::fprintf(stderr, "%s\n", e.what());
    return 1;
  };
  // Under mpirun: pretrain and finetune are data parallel (every process runs the same
  // command; rank 0 prints and writes); an error on any rank ends the job with its message.
  const int launched = launched_processes();
  const bool data_parallel = pre->parsed() || fin->parsed();
  if (launched > 1 && !data_parallel) {
    if (std::getenv("OMPI_COMM_WORLD_RANK") == nullptr || std::atoi(std::getenv("OMPI_COMM_WORLD_RANK")) == 0)
      std::fprintf(stderr, "mae %s runs in one process; only pretrain and finetune run under mpirun\n",
                   app.get_subcommands().front()->get_name().c_str());
    return 1;
  }
#ifdef MAE_TOOL_MPI
  if (launched > 1) {
    mae::mpi::Session mpi(argc, argv);
    process_group() = mae::mpi::data_parallel(mpi.comm());
    if (mpi.rank() != 0 && std::freopen("/dev/null", "w", stdout) == nullptr) return 1;
    return mae::mpi::run_or_abort([&] { return run(); }, mpi.comm());
  }
#else
  if (launched > 1)
    return report(mae::Error("this mae was built without MPI (install libopenmpi-dev and rebuild): under mpirun its " +
                             std::to_string(launched) + " processes would each train alone"));
#endif
  try {
    return run ? run() : 0;
  } catch (const std::exception& e) {
    return report(e);
  }
}
