// mae/data.hpp — the mae::data side, everything that reads or writes files other than
// checkpoints: datasets/ (Fashion-MNIST: zlib; image folders: PNG with libspng, JPEG with
// libjpeg-turbo, WebP with libwebp, TIFF with libtiff, BMP/GIF/PGM/PPM with stb_image;
// WebDataset tar shards with libarchive) and figures/ (stb_image_write, gnuplot). Kept apart
// from <mae/mae.hpp> because it needs libraries the models do not: link the mae::data CMake
// target (zlib, libspng, libturbojpeg, libwebp, libtiff, libarchive, Debian's libstb).
#ifndef MAE_DATA_HPP
#define MAE_DATA_HPP

#include "mae.hpp"

#include "datasets/fashion_mnist.hpp"
#include "datasets/image_decode.hpp"
#include "datasets/image_folder.hpp"
#include "datasets/shards.hpp"
#include "figures/figures.hpp"

#endif  // MAE_DATA_HPP
