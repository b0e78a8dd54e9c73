"""A pymodbus server for canary's tests: an independent Modbus implementation.

Usage: pyserver.py SPEC.json
SPEC: {"mode": "tcp" | "rtu", "port": 5020, "device": "/dev/pts/N",
       "units": {"1": {"hr": [...], "ir": [...], "co": [...], "di": [...],
                       "hr_sparse": {"addr": value, ...}}}}
Units missing from SPEC are ignored (no answer), so a client times out as on a
dead device. Reads beyond a table answer with exception 2 (illegal data address).
Prints "ready" on stdout once it serves.
"""
import asyncio
import json
import logging
import sys

from pymodbus.datastore import (ModbusSequentialDataBlock, ModbusServerContext,
                                ModbusSlaveContext, ModbusSparseDataBlock)
from pymodbus.server import StartAsyncSerialServer, StartAsyncTcpServer
from pymodbus.transaction import ModbusRtuFramer


def block(values):
    return ModbusSequentialDataBlock(0, list(values) or [0])


def main():
    with open(sys.argv[1], encoding="utf-8") as f:
        spec = json.load(f)
    logging.basicConfig(level=logging.CRITICAL)
    slaves = {}
    for unit, tables in spec["units"].items():
        hr = block(tables.get("hr", []))
        if "hr_sparse" in tables:
            # Only the listed addresses exist: reading a hole is exception 2.
            hr = ModbusSparseDataBlock({int(k): v for k, v in tables["hr_sparse"].items()})
        slaves[int(unit)] = ModbusSlaveContext(
            hr=hr, ir=block(tables.get("ir", [])),
            co=block(tables.get("co", [])), di=block(tables.get("di", [])),
            zero_mode=True)
    context = ModbusServerContext(slaves=slaves, single=False)

    async def serve():
        loop = asyncio.get_running_loop()
        loop.call_later(0.3, lambda: print("ready", flush=True))
        if spec["mode"] == "tcp":
            await StartAsyncTcpServer(context=context, address=("127.0.0.1", spec["port"]),
                                      ignore_missing_slaves=True)
        else:
            await StartAsyncSerialServer(context=context, framer=ModbusRtuFramer,
                                         port=spec["device"], baudrate=spec.get("baud", 19200),
                                         bytesize=8, parity=spec.get("parity", "N"),
                                         stopbits=spec.get("stop_bits", 1),
                                         ignore_missing_slaves=True)

    asyncio.run(serve())


if __name__ == "__main__":
    main()
