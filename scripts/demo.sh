#!/usr/bin/env bash
# The demo: plan and apply of manifests/ against an embedded SQLite database (./reconciler.db),
# with the bundled provider simulator standing in for the real provider APIs: the webhooks the
# manifests declare are created at the simulated Stripe, Postmark and Quo.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ ! -x .venv/bin/reconciler ]; then
  python3 -m venv .venv
  .venv/bin/python -m pip install --quiet --upgrade pip
  .venv/bin/python -m pip install --quiet -e .
fi
export PATH="$PWD/.venv/bin:$PATH"

# A demo encryption key, kept beside the demo database so a second run can decrypt the first.
if [ ! -s .demo-keys ]; then
  reconciler keys generate --key-id demo > .demo-keys
  chmod 600 .demo-keys
fi
export RECONCILER_ENCRYPTION_KEYS="$(cat .demo-keys)"
export RECONCILER_ACTOR="${RECONCILER_ACTOR:-demo}"

# Demo secrets: the simulator accepts any key that does not ask for a failure by its name. A key
# that names an account (acct_<ID>_) belongs to it: another key naming it is a rotated key of the
# same account, which sees the webhooks made with this one.
export ACME_STRIPE_SECRET_KEY=sk_test_acct_1Acme_demo ACME_POSTMARK_TOKEN=demo-postmark-server-token
export ACME_POSTMARK_ACCOUNT_TOKEN=demo-postmark-account-token   # senders made at Postmark
export ACME_QUO_KEY=acct_1AcmeQuo_demo-key ACME_MAPBOX_TOKEN=pk.demo-mapbox-token
export ACME_GOOGLE_MAPS_KEY=AIzaDemoGoogleMapsKey ACME_GEOAPIFY_KEY=demo-geoapify-key
export ACME_ANTHROPIC_KEY=sk-ant-demo-key
export GLOBEX_STRIPE_SECRET_KEY=sk_test_acct_1Globex_demo GLOBEX_POSTMARK_TOKEN=demo-globex-postmark

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
reconciler simulate --port "$port" > .demo-simulator.log 2>&1 &
sim=$!
trap 'kill $sim 2>/dev/null || true' EXIT
for p in stripe postmark mapbox google_maps geoapify anthropic quo; do
  export "RECONCILER_BASE_URL_${p^^}=http://127.0.0.1:$port/$p"
done
for _ in $(seq 50); do
  python3 -c "import socket; socket.create_connection(('127.0.0.1', $port), 0.2)" 2>/dev/null && break
  sleep 0.1
done

echo "== reconciler validate"; reconciler validate manifests/
echo "== reconciler plan";     reconciler plan manifests/
echo "== reconciler apply";    reconciler apply manifests/
echo "== reconciler plan (again: nothing to do)"; reconciler plan manifests/ --detailed-exitcode
echo "== reconciler health";   reconciler health
echo "== reconciler drift (manifests, database and the simulated providers agree)"; reconciler drift manifests/
echo "== reconciler status";   reconciler status
echo
echo "Next: reconciler report --out site/   (then open site/index.html)"
echo "The database is ./reconciler.db; the key is in .demo-keys: export RECONCILER_ENCRYPTION_KEYS=\"\$(cat .demo-keys)\""
