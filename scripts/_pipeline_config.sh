# Sourced by the pipeline scripts: when the first argument is not a config file, put one in front of
# the arguments: $JISIK_PIPELINE_CONFIG, else the example pipeline (whose SQLite warehouse is created).
if [ $# -eq 0 ] || [[ "$1" == -* ]]; then
  config="${JISIK_PIPELINE_CONFIG:-examples/pipeline/demo.yaml}"
  if [ "$config" = "examples/pipeline/demo.yaml" ]; then
    python examples/pipeline/make_warehouse.py >&2
  fi
  set -- "$config" "$@"
fi
