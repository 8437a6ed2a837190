"""Python paho-mqtt (Debian python3-paho-mqtt 1.6) as a third-party imqtt client.

Driven by e2e/interop_test.go: env HOST, PORT, PROTO (4 or 5), USER, DEVICE,
TOKEN, PEER. It sends to PEER, waits for PEER's answer live, syncs (plain,
then gzip-compressed), reads, recalls its message, and prints one JSON line
per step.
"""
import gzip
import json
import os
import queue
import sys

import paho.mqtt.client as mqtt

env = os.environ
user, device, peer = env["USER"], env["DEVICE"], env["PEER"]
inbox, direct = f"im/u/{user}/inbox", f"im/u/{user}/d/{device}"
v5 = env["PROTO"] == "5"
events = queue.Queue()


def on_message(_c, _u, m):
    compressed = m.payload[:2] == b"\x1f\x8b"  # asked for with "compress":"gzip"
    ev = json.loads(gzip.decompress(m.payload) if compressed else m.payload)
    ev["topic"] = m.topic
    ev["gzip"] = compressed
    events.put(ev)


backlog = []  # events that came before anyone waited for them


def wait(pred):
    for i, ev in enumerate(backlog):
        if pred(ev):
            return backlog.pop(i)
    while True:
        ev = events.get(timeout=20)
        if pred(ev):
            return ev
        backlog.append(ev)


def out(step, ev):
    print(json.dumps({"step": step, **ev}), flush=True)


c = mqtt.Client(client_id=f"{user}/{device}", protocol=mqtt.MQTTv5 if v5 else mqtt.MQTTv311)
c.username_pw_set(user, env["TOKEN"])
c.on_message = on_message
connected = queue.Queue()
c.on_connect = lambda _c, _u, _f, rc, *_: connected.put(rc)
c.connect(env["HOST"], int(env["PORT"]), keepalive=30)
c.loop_start()
rc = connected.get(timeout=20)
if rc != 0:
    sys.exit(f"connect refused: {rc}")
c.subscribe([(inbox, 1), (direct, 1)])

props = None
if v5:
    from paho.mqtt.properties import Properties
    from paho.mqtt.packettypes import PacketTypes
    props = Properties(PacketTypes.PUBLISH)
    props.UserProperty = ("trace", "abc")
    props.ResponseTopic = direct
c.publish("im/send", json.dumps({"cmid": "py-1", "to": peer, "type": "text", "body": "from python"}), qos=1, properties=props)
ack = wait(lambda e: e.get("kind") == "ack" and e.get("cmid") == "py-1")
out("ack", ack)
out("msg", wait(lambda e: e.get("kind") == "msg" and e.get("from") == peer and e["topic"] == inbox))
c.publish("im/sync", json.dumps({"since": 0}), qos=1)
out("sync", wait(lambda e: e.get("kind") == "sync"))
c.publish("im/sync", json.dumps({"since": 0, "compress": "gzip"}), qos=1)
out("gzsync", wait(lambda e: e.get("kind") == "sync"))
c.publish("im/read", json.dumps({"peer": peer}), qos=1)
out("unread", wait(lambda e: e.get("kind") == "unread"))
# A change of the message: recall it. The recall is acked on the device
# topic, then comes live on the inbox (both parties' devices get it).
c.publish("im/recall", json.dumps({"cmid": "py-r1", "id": ack["id"]}), qos=1)
out("recallack", wait(lambda e: e.get("kind") == "ack" and e.get("cmid") == "py-r1"))
out("recall", wait(lambda e: e.get("kind") == "recall" and e.get("id") == ack["id"] and e["topic"] == inbox))
while not events.empty():
    backlog.append(events.get())
out("rest", {"events": backlog})  # what nobody waited for: a repeat would show here
c.disconnect()
c.loop_stop()
