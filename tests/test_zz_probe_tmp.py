import time
from helpers import WORKSPACE, DEMO_PHONE, ISSUED, API_KEY
from tools.servers import GunicornServer
import requests

def test_probe(env, demo, make_app, tmp_path):
    server = GunicornServer(env, tmp_path / "g.log", workers=2)
    try:
        cli = make_app().test_cli_runner()
        s = requests.Session()
        # warm: use a key so rings are loaded and 'in use'
        r = cli.invoke(args=["keys", "create", "--workspace", WORKSPACE, "--name", "warm", "--no-convex"])
        warm = r.output.strip().splitlines()[-1]; ISSUED.append(warm)
        time.sleep(2.5)
        for _ in range(20):
            s.get(server.url + "/api/contacts/by-phone", params={"phone": DEMO_PHONE, "workspace_id": WORKSPACE}, headers={"x-api-key": warm})
        results = []
        for i in range(5):
            time.sleep(0.37 * i)
            r = cli.invoke(args=["keys", "create", "--workspace", WORKSPACE, "--name", f"n{i}", "--no-convex"])
            key = r.output.strip().splitlines()[-1]; ISSUED.append(key)
            t0 = time.monotonic(); first_ok = None; refused = 0
            while time.monotonic() - t0 < 3:
                st = s.get(server.url + "/api/contacts/by-phone", params={"phone": DEMO_PHONE, "workspace_id": WORKSPACE}, headers={"x-api-key": key}).status_code
                if st == 200:
                    first_ok = time.monotonic() - t0; break
                refused += 1
            results.append((refused, first_ok))
        print(results)
    finally:
        server.stop()
