#!/usr/bin/env bash
# Rebuild the shipped demo bundle from the shipped sample (deterministic: same files, same bundle id),
# then make it the production model. Run from the repository root with the project's venv.
set -euo pipefail
PY=${PYTHON:-.venv/bin/python}
"$PY" -m research train --data data/sample/bitbank_BTC-JPY_15m_2018.csv.gz --out models/demo \
  --set ml.model_params.lightgbm.n_estimators=60 --set ml.model_params.lightgbm.num_leaves=15 \
  --set ml.model_params.xgboost.n_estimators=60 --set ml.model_params.xgboost.max_depth=4 \
  --set ml.model_params.random_forest.n_estimators=40 --set ml.model_params.random_forest.max_depth=6
"$PY" -m research promote models/demo/bundle --reason "demo bundle trained on the shipped sample"
