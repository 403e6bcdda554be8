"""Two-way interop with kafka-python, an independent Kafka client implementation.

  decode FILE         print every record of a .log file, one line each, after checking
                      each batch's CRC: offset, timestamp, key hex, value hex, headers
  encode CODEC FILE   write one batch of known records built by kafka-python with CODEC
                      (none, gzip, snappy, lz4, zstd) to FILE
Lines use "-" for null; headers are key=valuehex joined by ",".
"""
import sys

from kafka.record.default_records import DefaultRecordBatchBuilder
from kafka.record.memory_records import MemoryRecords

CODECS = {"none": 0, "gzip": 1, "snappy": 2, "lz4": 3, "zstd": 4}


def hexed(b):
    return "-" if b is None else bytes(b).hex()


def decode(path):
    records = MemoryRecords(open(path, "rb").read())
    while records.has_next():
        batch = records.next_batch()
        if not batch.validate_crc():
            sys.exit("bad crc in batch at offset %d" % batch.base_offset)
        for r in batch:
            headers = ",".join("%s=%s" % (k, hexed(v)) for k, v in r.headers)
            print(r.offset, r.timestamp, hexed(r.key), hexed(r.value), headers or "-")


def encode(codec, path):
    builder = DefaultRecordBatchBuilder(
        magic=2, compression_type=CODECS[codec], is_transactional=False,
        producer_id=-1, producer_epoch=-1, base_sequence=-1, batch_size=1 << 20)
    for i in range(5):
        key = None if i == 2 else ("key-%d" % i).encode()
        value = None if i == 3 else ("value-%d" % i).encode() * (i + 1)
        headers = [("h%d" % i, b"x" * i)] if i % 2 else []
        builder.append(i, timestamp=1_700_000_000_000 + i, key=key, value=value, headers=headers)
    open(path, "wb").write(bytes(builder.build()))


if __name__ == "__main__":
    if sys.argv[1] == "decode":
        decode(sys.argv[2])
    else:
        encode(sys.argv[2], sys.argv[3])
