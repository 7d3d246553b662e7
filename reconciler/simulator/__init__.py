"""A local stand-in for the seven providers' APIs (and an OAuth2 demo provider).

Each provider is served under its slug on one port (`http://127.0.0.1:PORT/stripe/v1/account`)
and answers the way the real API does; the value of the key picks the answer (success, bad key,
rate limit, outage...), so tests, the README demo and benchmarks need no real accounts.

Modules: `server` (HTTP and the `Simulator` handle), `dialect` (the interface each provider
implements and the shared dispatch), one `*_api` module per provider, `verdict` (key rules),
`state` (counters, revocations, records), `admin` (`/_sim/...`), `wire` (request/answer values),
`accounts` (the account a key belongs to: a rotated key that names `acct_<ID>_` keeps it).
The objects the reconciler manages at the providers, per account: `stripe_webhooks`,
`postmark_resources` (webhooks, sender signatures), `quo_webhooks`, `anthropic_costs` (the cost
report); `controls` changes them behind the tool's back, as a person in a dashboard would.
"""

from reconciler.simulator.server import PROVIDERS, Simulator, run

__all__ = ["PROVIDERS", "Simulator", "run"]
