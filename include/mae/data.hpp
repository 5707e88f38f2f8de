// mae/data.hpp — the mae::data side, everything that reads or writes files other than
// checkpoints: Fashion-MNIST (zlib), image folders (PNG: libspng, JPEG: libjpeg-turbo,
// BMP/GIF/PGM/PPM: stb_image), figures (stb_image_write, gnuplot), and the batch loader they
// feed. Kept apart from <mae/mae.hpp> because it needs libraries the models do not: link the
// mae::data CMake target (zlib, libspng, libturbojpeg, Debian's libstb).
#ifndef MAE_DATA_HPP
#define MAE_DATA_HPP

#include "data/fashion_mnist.hpp"
#include "data/figures.hpp"
#include "data/image_decode.hpp"
#include "data/image_folder.hpp"
#include "data/loader.hpp"

#endif  // MAE_DATA_HPP
