"""Calls search, partners and networks through a client generated from klynge's
/openapi.json (openapi-python-client), the way a portal front-end would: typed
calls, typed answers. Run by scripts/schemathesis.sh against its demo service:

    python generated_client_check.py BASE_URL WRITE_KEY CLIENT_PARENT_DIR

Exits non-zero (with the reason) when a call fails or an answer does not parse
into the generated types.
"""

import json
import sys

base, key, parent = sys.argv[1], sys.argv[2], sys.argv[3]
sys.path.insert(0, parent)

from klynge_client import AuthenticatedClient  # noqa: E402
from klynge_client.api.firms import search_firms  # noqa: E402
from klynge_client.api.recommendations import create_network, get_partners  # noqa: E402
from klynge_client.models import CountryCode, NetworkRequestBody, SearchResponse, ShortlistResponse  # noqa: E402

client = AuthenticatedClient(base_url=base, token=key, raise_on_unexpected_status=True, timeout=120)

search = search_firms.sync(client=client, q="food processing", country=CountryCode.DK, limit=5)
assert isinstance(search, SearchResponse), f"search: {search!r}"
assert search.hits, "search: no hits for 'food processing' in DK"
firm = search.hits[0].id

partners = get_partners.sync(client=client, id=firm, k=5)
assert isinstance(partners, ShortlistResponse), f"partners of {firm}: {partners!r}"
assert partners.partners, f"partners of {firm}: none"

network = create_network.sync_detailed(client=client, body=NetworkRequestBody(opportunity="low-carbon food packaging"))
assert network.status_code == 200, f"network: {network.status_code} {network.content[:300]!r}"
# The network is read from the raw answer (sync_detailed keeps its bytes) as JSON.
members = json.loads(network.content)["network"].get("members", [])
assert len(members) >= 5, f"network: {len(members)} members"

print(f"generated client: search found {search.total} firms, {firm} has {len(partners.partners)} partners, "
      f"the network has {len(members)} members")
