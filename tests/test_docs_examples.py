"""Shell examples of the README and the guides do what their comments say."""

from __future__ import annotations

import re
import subprocess

import pytest

from tests.servers import ROOT

pytestmark = pytest.mark.django_db(transaction=True)


def shell_blocks(path: str) -> list[str]:
    return re.findall(r"```sh\n(.*?)```", (ROOT / path).read_text(), re.S)


def test_the_readme_second_delete_meets_a_run_it_canceled_itself(asgi_server):
    [block] = [b for b in shell_blocks("README.md") if "# 409" in b and "DELETE" in b]
    lines = [line for line in block.splitlines() if "RUN2" in line]
    script = "set -e\n" + "\n".join(lines).replace("localhost:7070", asgi_server.url.removeprefix("http://"))

    result = subprocess.run(["bash", "-c", script], capture_output=True, text=True, timeout=60)

    assert result.returncode == 0, result.stderr
    *_, second = result.stdout.replace("}{", "}\n{").splitlines()
    assert '"code":"invalid_transition"' in second.replace(" ", "")
    assert '"from":"canceled","to":"canceled"' in second.replace(" ", "")


def test_the_kubernetes_guide_sets_key_before_its_curl_uses_it():
    text = "\n".join(shell_blocks("docs/guides/kubernetes.md"))

    assert "$KEY" in text
    assert re.search(r"^KEY=", text, re.M), "KEY is set in the guide"
    assert text.index("KEY=") < text.index("$KEY")
    assert 'ORCHESTRATOR_API_KEY="$KEY"' in text, "the key curl sends is the one the server holds"
