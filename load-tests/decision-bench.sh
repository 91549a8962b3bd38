#!/usr/bin/env bash
# Routing-decision benchmark (issue 3): 10,000 contacts for the user, 100,000 calls, each
# timed on its own; prints mean and percentiles. Bounded: a fixed number of calls.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo bench -p tsps-actors --bench decision 2>/dev/null | grep -E '^(decision|OfferCall)'
