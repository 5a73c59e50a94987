"""locust.contrib.dns under lcore: Locust's dns_ex.py against a small DNS server of the test's
own (dnspython, UDP and TCP on loopback) that counts the queries it answered by transport and
name, so what lcore recorded is checked against what the server saw."""

from __future__ import annotations

import collections
import csv
import socketserver
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from contrib_servers import need_module
from test_engine import free_port, write

pytestmark = pytest.mark.integration

# Locust's examples/dns_ex.py, pointed at the test's server (its port, and a shorter pause:
# the server is ours)
EXAMPLE = """
from locust import run_single_user, task
from locust.contrib.dns import DNSUser

import time

import dns.message
import dns.rdatatype


class MyDNSUser(DNSUser):
    @task
    def t(self):
        message = dns.message.make_query("example.com", dns.rdatatype.A)
        self.client.udp(message, "127.0.0.1", port={port}, timeout=5)
        self.client.tcp(message, "127.0.0.1", port={port}, timeout=5)
        self.client.udp(
            dns.message.make_query("doesnot-exist-1234234.com", dns.rdatatype.A),
            "127.0.0.1",
            port={port},
            timeout=5,
            name="You can rename requests",
        )
        time.sleep(0.05)


if __name__ == "__main__":
    run_single_user(MyDNSUser)
"""


class DNSServer:
    """Answers A queries for example.com (NXDOMAIN for any other name) over UDP and TCP."""

    def __init__(self) -> None:
        self.seen: collections.Counter[tuple[str, str]] = collections.Counter()
        self.lock = threading.Lock()
        server = self

        class UDP(socketserver.BaseRequestHandler):
            def handle(self) -> None:
                data, sock = self.request
                sock.sendto(server.answer("udp", data), self.client_address)

        class TCP(socketserver.BaseRequestHandler):
            def handle(self) -> None:
                import dns.query

                while True:
                    try:
                        query, _ = dns.query.receive_tcp(self.request)
                    except (EOFError, OSError):
                        return  # the client closed the connection
                    dns.query.send_tcp(self.request, server.answer("tcp", query.to_wire()))

        for _ in range(20):  # one port number for both transports
            port = free_port()
            try:
                self.udp = socketserver.ThreadingUDPServer(("127.0.0.1", port), UDP)
            except OSError:
                continue
            self.tcp = socketserver.ThreadingTCPServer(("127.0.0.1", port), TCP)
            break
        self.port = port
        for s in (self.udp, self.tcp):
            s.daemon_threads = True
            threading.Thread(target=s.serve_forever, daemon=True).start()

    def answer(self, transport: str, wire: bytes) -> bytes:
        import dns.message
        import dns.rcode
        import dns.rrset

        query = dns.message.from_wire(wire)
        qname = query.question[0].name.to_text()
        with self.lock:
            self.seen[(transport, qname)] += 1
        response = dns.message.make_response(query)
        if qname == "example.com.":
            response.answer.append(dns.rrset.from_text(qname, 60, "IN", "A", "127.0.0.8"))
        else:
            response.set_rcode(dns.rcode.NXDOMAIN)
        return response.to_wire()

    def stop(self) -> None:
        for s in (self.udp, self.tcp):
            s.shutdown()
            s.server_close()


@pytest.fixture
def dns_server() -> Iterator[DNSServer]:
    need_module("dns")
    server = DNSServer()
    try:
        yield server
    finally:
        server.stop()


def read_rows(prefix: Path) -> dict[tuple[str, str], tuple[int, int]]:
    with open(f"{prefix}_stats.csv", newline="") as f:
        return {
            (r["Type"], r["Name"]): (int(r["Request Count"]), int(r["Failure Count"]))
            for r in csv.DictReader(f)
            if r["Name"] != "Aggregated"
        }


def test_dns_example_records_what_the_server_answered(tmp_path, run_lcore, dns_server) -> None:
    locustfile = write(tmp_path, EXAMPLE.format(port=dns_server.port))
    prefix = tmp_path / "run"
    proc = run_lcore(
        "-f", str(locustfile), "--headless", "-u", "3", "-r", "10", "-t", "3s",
        "--processes", "2", "--master-bind-port", str(free_port()), "--no-web",
        "--csv", str(prefix),
    )  # fmt: skip
    assert proc.wait(60) == 1, proc.output[-4000:]  # the NXDOMAIN lookups failed
    assert "Traceback" not in proc.output, proc.output[-4000:]
    rows = read_rows(prefix)
    assert set(rows) == {("DNS", "udp"), ("DNS", "tcp"), ("DNS", "You can rename requests")}
    udp, udp_failed = rows[("DNS", "udp")]
    tcp, tcp_failed = rows[("DNS", "tcp")]
    renamed, renamed_failed = rows[("DNS", "You can rename requests")]
    assert udp_failed == tcp_failed == 0
    assert renamed == renamed_failed > 10  # every NXDOMAIN answer is a failure
    seen = dns_server.seen
    assert udp == seen[("udp", "example.com.")]
    assert tcp == seen[("tcp", "example.com.")]
    assert renamed == seen[("udp", "doesnot-exist-1234234.com.")]

    with open(f"{prefix}_failures.csv", newline="") as f:
        (failure,) = list(csv.DictReader(f))
    assert failure["Name"] == "You can rename requests"
    assert failure["Error"] == "ContribError('No answer in DNS response (NXDOMAIN)')"
    # a response's size on the wire: the example.com answer is larger than its query
    with open(f"{prefix}_stats.csv", newline="") as f:
        sizes = {r["Name"]: float(r["Average Content Size"]) for r in csv.DictReader(f)}
    assert sizes["udp"] == sizes["tcp"] > 29
