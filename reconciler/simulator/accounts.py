"""Which account a key belongs to, so that a rotated key sees what the old one saw.

At the real providers a key is one of several keys of an account: a rolled Stripe secret key
(or a restricted key) belongs to the same Stripe account as the key it replaced, a regenerated
Postmark server token to the same server (an account token to the same Postmark account), and a
second Quo API key to the same workspace. What a key sees (webhook endpoints, webhooks, sender
signatures, phone numbers, the account id Stripe reports) belongs to that account.

The simulator reads the account from the key: a key that contains ``acct_<ID>_`` (letters and
digits, then an underscore) belongs to the account ``acct_<ID>``, e.g. ``sk_test_acct_1Acme_old``
and ``sk_test_acct_1Acme_new`` are two keys of Stripe account ``acct_1Acme``. Any other key is an
account of its own, as before. The rules that pick an answer by the key's words (``invalid``,
``ratelimited``...) still look at the whole key; per-key rate limits stay per key.
"""

from __future__ import annotations

import re

NAMED = re.compile(r"acct_[A-Za-z0-9]{1,64}(?=_)")


def named_account(key: str) -> str | None:
    """The ``acct_<ID>`` the key names, or None."""
    found = NAMED.search(key)
    return found.group(0) if found else None


def account(key: str) -> str:
    """The account whose objects the key sees: the one it names, else the key's own."""
    return named_account(key) or key
