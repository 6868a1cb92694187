#!/usr/bin/env bash
# A shared MLflow tracking server for a team: PostgreSQL backend store, an artifact directory served through
# the server (clients need no access to it), bound to 127.0.0.1 unless MLFLOW_HOST says otherwise.
#
#   MLFLOW_BACKEND_STORE_URI=postgresql://mlflow:secret@db-host:5432/mlflow \
#   MLFLOW_ARTIFACTS_DESTINATION=/srv/mlflow/artifacts \
#   mlflow/serve.sh                      # then: ape-nas sweep ... --tracking-uri http://127.0.0.1:5000
#
# Settings (environment, or a file given as $1 with KEY=value lines, e.g. mlflow/server.env.example):
#   MLFLOW_BACKEND_STORE_URI      required: database URL (PostgreSQL for a shared server)
#   MLFLOW_ARTIFACTS_DESTINATION  required: directory (or s3://...) where artifacts are stored
#   MLFLOW_HOST                   default 127.0.0.1 (this machine only); 0.0.0.0 exposes it — also set
#                                 MLFLOW_ALLOWED_HOSTS to the names clients use
#   MLFLOW_PORT                   default 5000
#   MLFLOW_WORKERS                default 2 (each worker ≈ 250 MB)
#   MLFLOW_ALLOWED_HOSTS          optional, passed to --allowed-hosts
set -euo pipefail
if [[ $# -ge 1 ]]; then
  set -a
  # shellcheck disable=SC1090
  source "$1"
  set +a
fi
: "${MLFLOW_BACKEND_STORE_URI:?set MLFLOW_BACKEND_STORE_URI (e.g. postgresql://user:pass@host:5432/mlflow)}"
: "${MLFLOW_ARTIFACTS_DESTINATION:?set MLFLOW_ARTIFACTS_DESTINATION (a directory shared by nobody but the server)}"
host="${MLFLOW_HOST:-127.0.0.1}"
port="${MLFLOW_PORT:-5000}"
workers="${MLFLOW_WORKERS:-2}"
case "$MLFLOW_ARTIFACTS_DESTINATION" in
  *://*) ;;
  *) mkdir -p "$MLFLOW_ARTIFACTS_DESTINATION" ;;
esac
extra=()
if [[ -n "${MLFLOW_ALLOWED_HOSTS:-}" ]]; then
  extra+=(--allowed-hosts "$MLFLOW_ALLOWED_HOSTS")
fi
py="${PYTHON:-python3}"
store="$MLFLOW_BACKEND_STORE_URI"
# SQLAlchemy 2.1 maps plain postgresql:// to psycopg 3; ape-nas[postgres] installs psycopg2: name the driver present.
case "$store" in
  postgresql://* | postgres://*)
    if ! "$py" -c 'import psycopg' 2>/dev/null; then
      if "$py" -c 'import psycopg2' 2>/dev/null; then
        store="postgresql+psycopg2://${store#*://}"
      else
        echo "serve.sh: no PostgreSQL driver for $py: pip install 'ape-nas[postgres]'" >&2
        exit 2
      fi
    fi
    ;;
esac
export MLFLOW_SERVER_ENABLE_JOB_EXECUTION="${MLFLOW_SERVER_ENABLE_JOB_EXECUTION:-false}"
echo "MLflow tracking server: http://${host}:${port}  (store ${MLFLOW_BACKEND_STORE_URI%%://*}://…, artifacts ${MLFLOW_ARTIFACTS_DESTINATION})"
exec "$py" -m mlflow server \
  --backend-store-uri "$store" \
  --artifacts-destination "$MLFLOW_ARTIFACTS_DESTINATION" \
  --serve-artifacts \
  --host "$host" --port "$port" --workers "$workers" "${extra[@]}"
