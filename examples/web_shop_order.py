#!/usr/bin/env python3
"""Drop an order into a crmsync folder sync, as a web shop would (B-14).

The instance runs a sync with "transport": "local" (or FTP) whose download folder is the
folder this script writes to; the instance is the active side of that sync, so fields are
named by the instance's own field numbers and the table by its own table id. Number your
packets 1, 2, 3, ... (--seq): the instance reads them in that order.

    python3 examples/web_shop_order.py --folder /srv/shop-orders --key 3f9a…(64 hex) \
        --seq 1 --table 2 --field 5="Order 1042" --field 6="1500.00" --file 7=invoice.pdf

The key is one the instance issued for this program (POST /api/v1/syncs/{id}/writer-keys,
shown once, revocable). A file field's content goes beside the packet as chunk files of
8 MiB, written first.

Every file is sealed (sync protocol 2): ChaCha20-Poly1305 under the key, with a readable
header that says which key, who writes ("writer"), what ("packet" or the chunk file's
name), a sequence number that only grows and the time. The body is left uncompressed
("raw"), so nothing beyond Python's standard library and the `cryptography` package is
needed. See docs/protocol.md, "Sealed messages" and "Third-party writers".
"""

import argparse
import hashlib
import hmac
import json
import os
import struct
import time
import uuid

from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305

CHUNK_BYTES = 8 << 20

MAGIC = b"CRMSCH02"
# This shop's writer identity; any fixed UUID, the same for every packet it writes.
SHOP_NODE = "6b1d7c3e-0000-4000-8000-00000000c0de"
_last_seq = 0


def key_id(key: bytes) -> str:
    """The key's public name, as the instance computes it."""
    return hmac.new(key, b"crmsync key id\n", hashlib.sha256).digest()[:8].hex()


def sealed(key: bytes, kind: str, body: bytes) -> bytes:
    """MAGIC | header length (u32, big-endian) | header JSON | nonce | ChaCha20-Poly1305."""
    global _last_seq
    _last_seq = max(_last_seq + 1, time.time_ns() // 1000)
    header = json.dumps({
        "v": 2, "key": key_id(key), "role": "writer", "kind": kind,
        "seq": _last_seq, "ts": int(time.time() * 1000), "raw": True,
    }).encode("utf-8")
    readable = MAGIC + struct.pack(">I", len(header)) + header
    nonce = os.urandom(12)
    return readable + nonce + ChaCha20Poly1305(key).encrypt(nonce, body, readable)


def write_complete(folder: str, name: str, data: bytes) -> None:
    """Complete files only: the instance never sees a half-written one."""
    temporary = os.path.join(folder, f".{name}.tmp")
    with open(temporary, "wb") as out:
        out.write(data)
    os.replace(temporary, os.path.join(folder, name))


def write_file_chunks(folder: str, key: bytes, after: int, path: str) -> dict:
    """Writes a file's chunks for the packet that follows `after`; returns its description."""
    digest = hashlib.sha256()
    size = 0
    with open(path, "rb") as source:
        while block := source.read(1 << 20):
            digest.update(block)
            size += len(block)
    sha256 = digest.hexdigest()
    with open(path, "rb") as source:
        index = 0
        while chunk := source.read(CHUNK_BYTES):
            name = f"{after:020d}-{sha256}-{index:06d}.chunk"
            write_complete(folder, name, sealed(key, name, chunk))
            index += 1
    return {"name": os.path.basename(path), "size": size, "sha256": sha256}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--folder", required=True, help="the instance's download folder")
    parser.add_argument("--key", required=True, help="the key the instance issued (64 hex digits)")
    parser.add_argument("--seq", required=True, type=int, help="this packet's number: 1, 2, 3, ...")
    parser.add_argument("--table", required=True, type=int, help="the instance's table id")
    parser.add_argument("--field", action="append", default=[], metavar="NO=VALUE",
                        help="a field number and its value (repeat)")
    parser.add_argument("--file", action="append", default=[], metavar="NO=PATH",
                        help="a file field's number and the file to attach (repeat)")
    parser.add_argument("--uid", default=None, help="the record's identity (new order: omit)")
    args = parser.parse_args()
    key = bytes.fromhex(args.key)

    stamp = {"hlc": int(time.time() * 1000) << 16, "node": SHOP_NODE}
    fields = {}
    for pair in args.field:
        number, _, value = pair.partition("=")
        fields[str(int(number))] = {"value": value, "stamp": stamp}
    for pair in args.file:
        number, _, path = pair.partition("=")
        description = write_file_chunks(args.folder, key, args.seq - 1, path)
        fields[str(int(number))] = {"value": description, "stamp": stamp}
    packet = {
        "after": args.seq - 1,
        "upto": args.seq,
        "remaining": 0,
        "items": [{
            "uid": args.uid or str(uuid.uuid4()),
            "table": args.table,
            "status": "active",
            "status_stamp": stamp,
            "fields": fields,
        }],
    }
    name = f"{args.seq - 1:020d}-{args.seq:020d}-{int(time.time() * 1000):013d}.cspk"
    # After the chunks: the instance applies the packet only with every file complete.
    body = json.dumps(packet, ensure_ascii=False).encode("utf-8")
    write_complete(args.folder, name, sealed(key, "packet", body))
    print(f"wrote {name}: record {packet['items'][0]['uid']}")


if __name__ == "__main__":
    main()
