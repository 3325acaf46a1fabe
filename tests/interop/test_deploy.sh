#!/usr/bin/env bash
# The deployments of deploy/ (no Docker engine, no cluster, no systemd as
# init needed): each is checked on its own terms, then its four services are
# started here exactly as it would start them, and a device enrolls.
#
#  - `cmake --install` lays out /opt/scepd as the image and the units use it
#    (bin/, lib/scepd/plugins/); deploy/make-secrets.sh makes the files the
#    deployments mount (a data directory's layout: ca/, ra/, keys/, ...).
#  - deploy/Dockerfile: build on debian:12 through scripts/deps.sh, run on
#    debian:12-slim as uid 10001; every runtime package exists in Debian 12
#    (apt-cache show) and together they provide every library the installed
#    programs and plugins link (ldd, dpkg -S, apt-cache depends).
#  - deploy/docker-compose.yml: `docker-compose config` accepts it; the CA
#    alone on internal networks shared only with the RA, read-only, all
#    capabilities dropped, no-new-privileges, its key a secret that no other
#    container gets (nor any other service's secret key); state on named
#    volumes; frontend replicas behind haproxy, which terminates TLS with a
#    secret and checks /healthz on the frontends' port; health checks.
#  - deploy/k8s/: every manifest parses (python3-yaml); Deployments for the
#    four, HPAs on the frontend and RA Deployments, one CA pod (Recreate)
#    with a PVC, a NetworkPolicy admitting only the RA pods to the CA,
#    Services matching the pods, Secrets and the ConfigMap as used.
#  - deploy/systemd/: `systemd-analyze verify` in a root holding the
#    installed programs, with nothing to say; exposure at most 4.0
#    (`systemd-analyze security --offline`); the sysusers file makes the
#    users; the ipc:// sockets are reachable only by the groups that need
#    them (the frontend not the CA's).
#  - For compose, k8s and systemd alike: each service is started with the
#    command line its deployment gives it, on the deployment's own
#    configuration with the container (or host) paths moved into this test's
#    directory and endpoints to ports of 127.0.0.1; every endpoint a service
#    connects to must lead to the service listening there and be allowed by
#    the deployment's networks, policies or socket groups. All four stay up,
#    their compose health checks and k8s probes (made against the local
#    ports: `scepctl health SECT` with the container's own key for the RPC
#    services, /healthz for the frontend) pass and leave them running, fail
#    for a service stopped with SIGSTOP (a TCP connect would not) and pass
#    again after SIGCONT; a device enrolls through the frontend with a password from the admin
#    page, `scepctl list` on the CA side shows the certificate, and SIGTERM
#    stops each service with status 0.
. "$(dirname "$0")/lib.sh"
interop_init deploy
DEPLOY="$SRC_DIR/deploy"
declare -A PIDS=()
PIDS_ORDER=()

check "tools: docker-compose, systemd-analyze, systemd-sysusers, python3 with yaml, apt-cache"
for t in docker-compose systemd-analyze systemd-sysusers apt-cache dpkg ldd; do
	command -v "$t" > /dev/null 2>&1 ||
		fail "$t is missing (scripts/deps.sh --test installs docker-compose and the rest)"
done
PY=
for p in /usr/bin/python3 python3; do
	if "$p" -c 'import yaml' > /dev/null 2>&1; then
		PY=$p
		break
	fi
done
[ -n "$PY" ] || fail "python3 with the yaml module is missing (python3-yaml)"
[ -x "$IOS_CLIENT" ] || fail "$IOS_CLIENT is not built"

# --- the checker: one Python program, a subcommand per deployment --------------
cat > "$WORK/deploy_check.py" <<'PYEOF'
import json, os, re, shlex, shutil, socket, stat, sys
import yaml

SECTIONS = ("frontend", "ra", "challenge", "ca")
STATE_KEYS = ("Database", "SecretFile")
SECRET_KEY_KEYS = ("Key", "SigningKey", "EncryptionKey", "CurveSecretKeyFile")


def die(msg):
    print(msg, file=sys.stderr)
    sys.exit(1)


def need(cond, msg):
    if not cond:
        die(msg)


def free_port():
    # tests/tools/free_port.py: below the ephemeral range, at random.
    import subprocess
    tool = os.path.join(os.environ["SRC_DIR"], "tests", "tools", "free_port.py")
    return int(subprocess.run([sys.executable, tool], check=True, capture_output=True, text=True).stdout)


def parse_conf(text):
    """{section: {key: value}} of an INI text (no inline comments)."""
    conf, sect = {}, None
    for line in text.splitlines():
        s = line.strip()
        if not s or s[0] in ";#":
            continue
        if s.startswith("["):
            sect = s[1:s.index("]")]
            conf.setdefault(sect, {})
            continue
        need("=" in s and sect is not None, f"configuration line '{s}' is not KEY = VALUE in a section")
        k, v = (x.strip() for x in s.split("=", 1))
        need(";" not in v, f"[{sect}] {k}: no inline comments please (inih may keep them)")
        conf[sect][k] = v
    return conf


def listen_port(conf, sect):
    v = conf.get(sect, {}).get("Listen", "")
    m = re.match(r"^(?:tcp://)?(\*|0\.0\.0\.0|\[::\]|[\w.-]+):(\d+)$", v)
    return (m.group(1), int(m.group(2))) if m else (None, None)


def rewrite_conf(text, root, tcp, ipc=None):
    """The configuration as the service sees it under `root`: absolute paths
    moved under root, tcp://HOST:PORT through tcp(section, key, host, port)
    -> local port, the frontend's Listen to 127.0.0.1."""
    out, sect = [], None
    for line in text.splitlines():
        s = line.strip()
        if not s or s[0] in ";#":
            out.append(line)
            continue
        if s.startswith("["):
            sect = s[1:s.index("]")]
            out.append(line)
            continue
        k, v = (x.strip() for x in s.split("=", 1))
        toks = []
        for t in v.split():
            m = re.match(r"^tcp://([^:/]+|\*):(\d+)$", t)
            if m:
                toks.append("tcp://127.0.0.1:%d" % tcp(sect, k, m.group(1), int(m.group(2))))
            elif t.startswith("ipc://"):
                p = t[6:]
                if ipc is not None:
                    ipc(sect, k, p)
                toks.append("ipc://" + (root + p if p.startswith("/") else p))
            elif sect == "frontend" and k == "Listen":
                host, port = listen_port({"frontend": {"Listen": t}}, "frontend")
                need(port is not None, f"[frontend] Listen '{t}' is not HOST:PORT")
                toks.append("127.0.0.1:%d" % tcp(sect, k, host, port))
            elif t.startswith("/"):
                toks.append(root + t)
            elif re.match(r"^[\w.-]+:/(?!/)", t):  # CurveClients NAME:/abs/path
                n, p = t.split(":", 1)
                toks.append(n + ":" + root + p)
            else:
                toks.append(t)
        out.append(f"{k} = {' '.join(toks)}")
    return "\n".join(out) + "\n"


def under(path, dirs):
    return any(path == d or path.startswith(d.rstrip("/") + "/") for d in dirs)


def own_section(argv):
    exe = os.path.basename(argv[0])
    need(exe.startswith("scepd-") and exe[6:] in SECTIONS,
         f"command {argv} does not run one of scepd-{{{','.join(SECTIONS)}}}")
    need(len(argv) == 3 and argv[1] == "--config" and argv[2].startswith("/"),
         f"command {argv} is not 'scepd-X --config /ABSOLUTE/FILE'")
    return exe[6:]


def container_path(conf_dir, value):
    return value if value.startswith("/") else os.path.normpath(os.path.join(conf_dir, value))


def check_state_and_keys(what, conf, sect, conf_dir, persistent, mounted_files):
    """State keys of the service's own section on persistent, writable
    storage; secret keys it uses mounted."""
    for k in STATE_KEYS:
        v = conf[sect].get(k)
        if v:
            p = container_path(conf_dir, v)
            need(under(p, persistent), f"{what}: [{sect}] {k} = {v} ({p}) is not on a persistent, writable volume {sorted(persistent)}")
    for k in SECRET_KEY_KEYS:
        v = conf[sect].get(k)
        if v and mounted_files is not None:
            p = container_path(conf_dir, v)
            need(p in mounted_files, f"{what}: [{sect}] {k} = {v}: {p} is not mounted")


def check_secret_keys_used(what, conf, sect, conf_dir, mounted_files):
    """A secret key (*.key) reaches only the service that uses it (and
    scepctl's beside the CA, where scepctl runs)."""
    used = {container_path(conf_dir, conf[sect][k]) for k in SECRET_KEY_KEYS if conf[sect].get(k)}
    if sect == "ca":
        used.add(os.path.join(conf_dir, "keys/scepctl.key"))
    for p in mounted_files:
        if p.endswith(".key") or p.endswith("admin.passwd"):
            if p.endswith("admin.passwd"):
                ok = sect == "frontend"
            else:
                ok = p in used
            need(ok, f"{what}: the secret {p} is given to the {sect} service, which does not use it")


def copy_file(src, dst):
    os.makedirs(os.path.dirname(dst), exist_ok=True)
    shutil.copy2(src, dst)


def link(src, dst):
    os.makedirs(os.path.dirname(dst), exist_ok=True)
    if os.path.lexists(dst):
        if os.path.isdir(dst) and not os.path.islink(dst) and not os.listdir(dst):
            os.rmdir(dst)
        else:
            die(f"{dst} exists twice")
    os.symlink(src, dst)


class Plan:
    """What the shell starts: start lines in order, the HTTP port, and
    where scepctl finds the CA's configuration."""
    def __init__(self):
        self.lines = []

    def start(self, name, argv):
        for a in argv:
            need("\t" not in a and a != "", f"argument {a!r}")
        self.lines.append("\t".join(["start", name] + argv))

    def emit(self, kind, value):
        self.lines.append(f"{kind}\t{value}")

    def write(self):
        order = {s: i for i, s in enumerate(("ca", "challenge", "ra", "frontend"))}
        starts = sorted([l for l in self.lines if l.startswith("start\t")], key=lambda l: order.get(l.split("\t")[1], 9))
        health = [l for l in self.lines if l.startswith("health\t")]
        rest = [l for l in self.lines if not l.startswith(("start\t", "health\t"))]
        for l in rest + starts + health:
            print(l)


def probe_argv(what, sect, argv, root, conf_dir, port, local_port):
    """A health check's (or probe's) command as run here. The RPC
    services' must be `scepctl --data-dir CONF_DIR health SECT`, a
    HealthRequest one of their workers answers: a TCP connect to their
    port succeeds while they hang. Paths move under root (the image's
    PATH holds /opt/scepd/bin), the port to the local one."""
    if sect != "frontend":
        i = argv.index("health") if "health" in argv else -1
        need(argv and os.path.basename(argv[0]) == "scepctl" and i > 0 and argv[i + 1:i + 2] == [sect],
             f"{what}: the health check of [{sect}] is not 'scepctl ... health {sect}': {argv}")
        need(any(argv[j] == "--data-dir" and argv[j + 1] == conf_dir for j in range(i)),
             f"{what}: the health check of [{sect}] does not give --data-dir {conf_dir}: {argv}")
    out = []
    for a in argv:
        if a == "scepctl":
            a = "/opt/scepd/bin/scepctl"
        if a == conf_dir or a.startswith((conf_dir + "/", "/opt/scepd/")):
            a = root + a
        out.append(re.sub(r"(127\.0\.0\.1|localhost)([:/])%d\b" % port,
                          lambda m: "127.0.0.1%s%d" % (m.group(2), local_port), a))
    return out


def check_listen_addr(what, sect, host):
    need(host in ("*", "0.0.0.0", "[::]"),
         f"{what}: [{sect}] Listen binds '{host}': containers and pods are reached on their own address, bind every address (*)")


# --- Dockerfile ---------------------------------------------------------------

def dockerfile(path, deps_sh, src, out_json):
    text = open(path).read()
    # Join continuation lines.
    text = re.sub(r"\\\n", " ", text)
    stages, cur = [], None
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        word, _, rest = line.partition(" ")
        word = word.upper()
        if word == "FROM":
            m = re.match(r"^(\S+)(?:\s+AS\s+(\S+))?$", rest.strip(), re.I)
            cur = {"image": m.group(1), "name": m.group(2), "ins": []}
            stages.append(cur)
        else:
            need(cur is not None, f"{path}: {word} before FROM")
            cur["ins"].append((word, rest.strip()))
    need(len(stages) >= 2, f"{path}: not multi-stage ({len(stages)} FROM)")
    build, final = stages[0], stages[-1]
    need(build["image"] in ("debian:12", "debian:bookworm"), f"{path}: the build stage is FROM {build['image']}, want debian:12")
    need(final["image"] in ("debian:12-slim", "debian:bookworm-slim"), f"{path}: the last stage is FROM {final['image']}, want debian:12-slim")
    runs = " ; ".join(r for w, r in build["ins"] if w == "RUN")
    if "scripts/deps.sh" not in runs:
        m = re.search(r"build_pkgs=\(([^)]*)\)", open(deps_sh).read())
        for p in m.group(1).split():
            need(re.search(r"(^|\s)" + re.escape(p) + r"(\s|$)", runs), f"{path}: the build stage does not install {p} (scripts/deps.sh)")
    need(re.search(r"cmake\s+--install\s+\S+.*--prefix[ =]/opt/scepd", runs), f"{path}: no 'cmake --install ... --prefix /opt/scepd' in the build stage")
    need(re.search(r"CMAKE_BUILD_TYPE=Release", runs), f"{path}: the build is not Release")
    need(any(w == "COPY" and re.match(r"--from=(build|0)\s+/opt/scepd\s+/opt/scepd", r) for w, r in final["ins"]),
         f"{path}: the last stage does not COPY --from=build /opt/scepd /opt/scepd")
    for st in stages:
        for w, r in st["ins"]:
            if w == "COPY" and "--from" not in r:
                for s in r.split()[:-1]:
                    need(os.path.exists(os.path.join(src, s)), f"{path}: COPY {s}: not in the repository")
    pkgs = []
    for w, r in final["ins"]:
        if w == "RUN":
            for m in re.finditer(r"apt-get\s+install\s+((?:[^&;|]|&(?!&))*)", r):
                pkgs += [t for t in m.group(1).split() if not t.startswith("-")]
    need(pkgs, f"{path}: the last stage installs no packages")
    need(not any(p.endswith("-dev") for p in pkgs), f"{path}: -dev packages in the runtime image: {[p for p in pkgs if p.endswith('-dev')]}")
    user = [r for w, r in final["ins"] if w == "USER"]
    need(user and re.match(r"^10001(:10001)?$", user[-1]), f"{path}: USER is {user[-1] if user else 'not set'}, want 10001:10001")
    def jsonform(word):
        v = [r for w, r in final["ins"] if w == word]
        if not v:
            return None
        try:
            return json.loads(v[-1])
        except ValueError:
            die(f"{path}: {word} is not in JSON form")
    json.dump({"entrypoint": jsonform("ENTRYPOINT"), "cmd": jsonform("CMD"), "user": user[-1]}, open(out_json, "w"))
    print("\n".join(pkgs))


# --- docker compose ------------------------------------------------------------

def compose(config_yml, image_json, compose_dir, secrets, opt, work):
    cfg = yaml.safe_load(open(config_yml))
    img = json.load(open(image_json))
    services = cfg.get("services") or {}
    networks = cfg.get("networks") or {}
    secret_defs = cfg.get("secrets") or {}
    volume_defs = cfg.get("volumes") or {}
    what = "docker-compose.yml"

    def nets(s):
        n = services[s].get("networks") or {"default": None}
        return set(n if isinstance(n, (dict, list)) else [])

    def argv_of(s):
        svc = services[s]
        ep = svc.get("entrypoint")
        cmd = svc.get("command")
        if isinstance(ep, str):
            ep = shlex.split(ep)
        if isinstance(cmd, str):
            cmd = shlex.split(cmd)
        if ep is not None:
            return list(ep) + list(cmd or [])
        return list(img["entrypoint"] or []) + list(cmd if cmd is not None else (img["cmd"] or []))

    scepd = {}
    for s, svc in services.items():
        if "build" in svc and "deploy/Dockerfile" in str(svc["build"].get("dockerfile", "")) or str(svc.get("image", "")).startswith("scepd"):
            scepd[s] = own_section(argv_of(s))
    by_sect = {}
    for s, sect in scepd.items():
        need(sect not in by_sect, f"{what}: services {by_sect.get(sect)} and {s} both run scepd-{sect}")
        by_sect[sect] = s
    need(set(by_sect) == set(SECTIONS), f"{what}: services for {sorted(set(SECTIONS) - set(by_sect))} missing")
    ca, ra, fe = by_sect["ca"], by_sect["ra"], by_sect["frontend"]

    def mounts(s):
        """(container path -> ('bind', host path) | ('volume', name) | ('secret', host path))."""
        m = {}
        for v in services[s].get("volumes") or []:
            if isinstance(v, str):
                parts = v.split(":")
                src, tgt = parts[0], parts[1]
                kind = "bind" if src.startswith(("/", ".")) else "volume"
                ro = len(parts) > 2 and "ro" in parts[2].split(",")
            else:
                src, tgt, kind, ro = v.get("source"), v["target"], v.get("type", "volume"), v.get("read_only", False)
            if kind == "volume":
                need(src in volume_defs, f"{what}: {s} mounts undeclared volume {src}")
            elif kind == "bind":
                need(ro, f"{what}: {s}: bind mount {src} is not read-only")
            m[tgt] = (kind, src)
        for sec in services[s].get("secrets") or []:
            if isinstance(sec, str):
                sec = {"source": sec}
            tgt = sec.get("target") or sec["source"]
            if not tgt.startswith("/"):
                tgt = "/run/secrets/" + tgt
            need(sec["source"] in secret_defs and "file" in secret_defs[sec["source"]], f"{what}: {s}: secret {sec['source']} has no file")
            m[tgt] = ("secret", secret_defs[sec["source"]]["file"])
        return m

    # Who runs how.
    for s in scepd:
        svc = services[s]
        user = str(svc.get("user") or img["user"])
        need(re.match(r"^10001(:10001)?$", user), f"{what}: {s} runs as '{user}', want 10001")
        need(svc.get("read_only") is True, f"{what}: {s}: read_only is not true")
        need("ALL" in (svc.get("cap_drop") or []), f"{what}: {s}: cap_drop is not [ALL]")
        need(svc.get("mem_limit") and svc.get("pids_limit"), f"{what}: {s}: no mem_limit or pids_limit")
        need(any(re.match(r"^no-new-privileges(:true)?$", o) for o in svc.get("security_opt") or []), f"{what}: {s}: no no-new-privileges")
        hc = svc.get("healthcheck") or {}
        need(hc.get("test") and not hc.get("disable"), f"{what}: {s} has no health check")
        # Its restart policy restarts whatever the status: a service
        # whose key store refused it must hold, not exit (lib/service.h).
        if svc.get("restart") not in (None, "no"):
            env = svc.get("environment") or {}
            if isinstance(env, list):
                env = dict(e.split("=", 1) for e in env)
            need(str(env.get("SCEPD_HOLD_ON_KEY_REFUSAL")) == "1",
                 f"{what}: {s}: restart: {svc.get('restart')} without SCEPD_HOLD_ON_KEY_REFUSAL=1 (a wrong HSM PIN would be tried at each restart)")
    # The CA: internal networks shared with the RA only; no ports.
    need(not services[ca].get("ports"), f"{what}: the CA publishes ports")
    for n in nets(ca):
        need((networks.get(n) or {}).get("internal") is True, f"{what}: the CA is on network '{n}', which is not internal")
        others = sorted(s for s in services if s != ca and n in nets(s))
        need(others == [ra], f"{what}: the CA's network '{n}' is shared with {others}, want only the RA ({ra})")
    # Frontends: several, behind a load balancer, never published themselves.
    reps = (services[fe].get("deploy") or {}).get("replicas") or services[fe].get("scale") or 1
    need(int(reps) >= 2, f"{what}: {fe} has {reps} replica(s)")
    need(not services[fe].get("ports"), f"{what}: the frontends publish ports themselves")
    lbs = [s for s, svc in services.items() if re.match(r"^(haproxy|nginx)(:|$)", str(svc.get("image", "")).split("/")[-1])]
    need(len(lbs) == 1, f"{what}: want one haproxy or nginx service, found {lbs}")
    lb = lbs[0]
    # A fixed address outside the network's ip_range: else a container
    # started before (a frontend, scaled out) may take it.
    import ipaddress
    for s_, svc in services.items():
        nets_ = svc.get("networks") or {}
        for n, opts in (nets_.items() if isinstance(nets_, dict) else []):
            addr = (opts or {}).get("ipv4_address")
            if not addr:
                continue
            ranges = [c.get("ip_range") for c in ((networks.get(n) or {}).get("ipam") or {}).get("config") or []]
            need(any(r and ipaddress.ip_address(addr) not in ipaddress.ip_network(r) for r in ranges),
                 f"{what}: {s_}: ipv4_address {addr} on network {n}, which has no ip_range leaving it out")
    need(services[lb].get("ports"), f"{what}: {lb} publishes no port")
    need(nets(lb) & nets(fe), f"{what}: {lb} shares no network with {fe}")

    conf_texts = {}
    plan = Plan()
    ports = {}
    port_of = lambda sect: ports.setdefault(sect, free_port())
    for s, sect in scepd.items():
        m = mounts(s)
        argv = argv_of(s)
        cpath = argv[2]
        need(cpath in m and m[cpath][0] == "bind", f"{what}: {s}: --config {cpath} is not a bind mount")
        conf_texts[s] = open(m[cpath][1]).read()
    confs = {s: parse_conf(t) for s, t in conf_texts.items()}
    # One file for all (what the README promises), each reading its section.
    need(len(set(conf_texts.values())) == 1, f"{what}: the services do not share one configuration")

    # The load balancer's configuration and TLS.
    lm = mounts(lb)
    cfgs = [src for tgt, (k, src) in lm.items() if k == "bind" and tgt.endswith((".cfg", ".conf"))]
    need(cfgs, f"{what}: {lb} mounts no configuration")
    lbcfg = open(cfgs[0]).read()
    fe_conf = confs[fe]
    fe_host, fe_port = listen_port(fe_conf, "frontend")
    check_listen_addr(what, "frontend", fe_host)
    crt = re.findall(r"^\s*bind\s+\S+.*\bssl\b.*\bcrt\s+(\S+)", lbcfg, re.M)
    need(crt, f"{cfgs[0]}: no 'bind ... ssl crt FILE': TLS does not end here")
    for c in crt:
        need(c in lm and lm[c][0] == "secret", f"{cfgs[0]}: the certificate {c} is not a secret of {lb}")
    backends = re.findall(r"^\s*server(?:-template)?\s+\S+\s+(?:\d+\s+)?([\w.-]+):(\d+)\b(.*)$", lbcfg, re.M)
    need(backends, f"{cfgs[0]}: no server lines")
    for host, port, rest in backends:
        need(host == fe and int(port) == fe_port, f"{cfgs[0]}: server {host}:{port}, want {fe}:{fe_port} ([frontend] Listen)")
        need(re.search(r"\bcheck\b", rest), f"{cfgs[0]}: server {host}:{port} without 'check'")
    need(re.search(r"^\s*option\s+httpchk\b", lbcfg, re.M) and re.search(r"/healthz\b", lbcfg), f"{cfgs[0]}: no health check on /healthz")
    # The admin page and /metrics kept from the outside whatever their
    # percent-encoding (the frontend decodes /certsrv/mscep%5Fadmin/).
    need(re.search(r"^\s*http-request\s+deny\b.*\bpath,url_dec\b.*mscep_admin.*\bpath,url_dec\b.*/metrics", lbcfg, re.M),
         f"{cfgs[0]}: the admin page and /metrics are not denied on the decoded path (path,url_dec)")
    hc = " ".join(services[fe]["healthcheck"]["test"]) if isinstance(services[fe]["healthcheck"]["test"], list) else services[fe]["healthcheck"]["test"]
    need(f"127.0.0.1:{fe_port}/healthz" in hc or f"localhost:{fe_port}/healthz" in hc, f"{what}: {fe}'s health check '{hc}' is not /healthz on port {fe_port}")

    for s, sect in scepd.items():
        conf, m = confs[s], mounts(s)
        root = os.path.join(work, s)
        cpath = argv_of(s)[2]
        conf_dir = os.path.dirname(cpath)
        need(sect in conf, f"{what}: {cpath} has no [{sect}] for {s}")
        host, port = listen_port(conf, sect)
        need(port is not None, f"{what}: [{sect}] Listen '{conf[sect].get('Listen')}' is not a tcp:// address")
        check_listen_addr(what, sect, host)
        persistent = [tgt for tgt, (k, _) in m.items() if k == "volume"]
        files = {tgt for tgt, (k, _) in m.items() if k in ("secret", "bind")}
        check_state_and_keys(f"{what}: {s}", conf, sect, conf_dir, persistent, files)
        check_secret_keys_used(f"{what}: {s}", conf, sect, conf_dir, {tgt for tgt, (k, _) in m.items() if k == "secret"})

        # The container's file system under root.
        os.makedirs(root)
        link(opt, root + "/opt/scepd")
        for d in ("/etc/scepd/ca", "/etc/scepd/ra", "/etc/scepd/keys", "/var/lib/scepd/db", "/var/lib/scepd/secrets"):
            os.makedirs(root + d, exist_ok=True)
        for tgt, (k, src) in sorted(m.items()):
            if k == "volume":
                vdir = os.path.join(work, "volumes", src)
                os.makedirs(vdir, mode=0o700, exist_ok=True)
                link(vdir, root + tgt)
            elif k == "secret":
                rel = os.path.relpath(src, os.path.join(compose_dir, "secrets"))
                need(not rel.startswith(".."), f"{what}: secret file {src} is not under compose/secrets/ (make-secrets.sh's output)")
                need(os.path.exists(os.path.join(secrets, rel)), f"{what}: secret file {rel} is not made by make-secrets.sh")
                copy_file(os.path.join(secrets, rel), root + tgt)
            elif tgt != cpath:
                copy_file(src, root + tgt)

        def tcp(sct, key, h, p, s=s, sect=sect):
            if key == "Listen":
                return port_of(sct)
            need(h in services, f"{what}: [{sct}] {key}: host '{h}' is not a compose service")
            if sct == sect:  # (others' sections: only ported)
                need(nets(s) & nets(h), f"{what}: [{sct}] {key}: {s} shares no network with {h}")
            need(h in scepd, f"{what}: [{sct}] {key}: {h} is not a scepd service")
            tsect = scepd[h]
            th, tp = listen_port(confs[h], tsect)
            need(tp == p, f"{what}: [{sct}] {key} = tcp://{h}:{p}, but {h} listens on {tp} ([{tsect}] Listen)")
            return port_of(tsect)
        os.makedirs(root + conf_dir, exist_ok=True)
        open(root + cpath, "w").write(rewrite_conf(conf_texts[s], root, tcp))
        plan.start(sect, [root + a if a.startswith("/") else a for a in argv_of(s)])
        # Its health check, run here against the local port.
        t = services[s]["healthcheck"]["test"]
        if isinstance(t, str):
            t = ["CMD-SHELL", t]
        need(t[0] in ("CMD", "CMD-SHELL"), f"{what}: {s}: health check {t}")
        hc = t[1:] if t[0] == "CMD" else ["/bin/sh", "-c", t[1]]
        hc = probe_argv(f"{what}: {s}", sect, hc, root, conf_dir, port, port_of(sect))
        plan.emit("health", sect + "\t" + json.dumps(hc))
    plan.emit("http", port_of("frontend"))
    plan.emit("ctl", os.path.join(work, ca) + os.path.dirname(argv_of(ca)[2]))
    plan.write()


# --- Kubernetes ------------------------------------------------------------------

def k8s(kdir, secrets, opt, work):
    docs, files = [], sorted(f for f in os.listdir(kdir) if f.endswith((".yaml", ".yml")))
    kust = None
    for f in files:
        for d in yaml.safe_load_all(open(os.path.join(kdir, f))):
            if d is None:
                continue
            need(isinstance(d, dict) and d.get("apiVersion") and d.get("kind"), f"k8s/{f}: a document without apiVersion and kind")
            if d["kind"] == "Kustomization":
                kust = (f, d)
                continue
            need((d.get("metadata") or {}).get("name"), f"k8s/{f}: a {d['kind']} without a name")
            d["_file"] = f
            docs.append(d)
    api = {"Deployment": "apps/v1", "StatefulSet": "apps/v1", "Service": "v1", "ConfigMap": "v1", "Secret": "v1",
           "PersistentVolumeClaim": "v1", "Namespace": "v1", "HorizontalPodAutoscaler": "autoscaling/v2",
           "NetworkPolicy": "networking.k8s.io/v1", "Ingress": "networking.k8s.io/v1",
           "PodDisruptionBudget": "policy/v1", "ServiceAccount": "v1"}
    for d in docs:
        need(d["kind"] in api, f"k8s/{d['_file']}: unexpected kind {d['kind']}")
        need(d["apiVersion"] == api[d["kind"]], f"k8s/{d['_file']}: {d['kind']} {d['metadata']['name']} has apiVersion {d['apiVersion']}, want {api[d['kind']]}")
    if kust:
        res = kust[1].get("resources") or []
        for r in res:
            need(r in files, f"k8s/{kust[0]}: resource {r} does not exist")
        for f in files:
            if f not in (kust[0], "secrets.yaml"):
                need(f in res, f"k8s/{kust[0]}: {f} is not among the resources")
        need("secrets.yaml" not in res, f"k8s/{kust[0]}: applies secrets.yaml, whose placeholders would replace real keys")
    kind = lambda k: [d for d in docs if d["kind"] == k]
    named = lambda k, n: next((d for d in kind(k) if d["metadata"]["name"] == n), None)
    matches = lambda sel, labels: bool(sel) and all(labels.get(k) == v for k, v in sel.items())

    work_by_sect, wl = {}, {}
    for d in kind("Deployment") + kind("StatefulSet"):
        n, spec = d["metadata"]["name"], d["spec"]
        pod = spec["template"]
        labels = pod["metadata"]["labels"]
        need(matches(spec["selector"]["matchLabels"], labels), f"k8s: {n}: the selector does not match its pods")
        ps = pod["spec"]
        psc = ps.get("securityContext") or {}
        vols = {v["name"]: v for v in ps.get("volumes") or []}
        for c in (ps.get("initContainers") or []) + ps["containers"]:
            csc = c.get("securityContext") or {}
            need(csc.get("runAsNonRoot", psc.get("runAsNonRoot")) is True, f"k8s: {n}/{c['name']}: runAsNonRoot is not true")
            need(str(csc.get("runAsUser", psc.get("runAsUser"))) == "10001", f"k8s: {n}/{c['name']}: runAsUser is not 10001")
            need(csc.get("readOnlyRootFilesystem") is True, f"k8s: {n}/{c['name']}: readOnlyRootFilesystem is not true")
            need(csc.get("allowPrivilegeEscalation") is False, f"k8s: {n}/{c['name']}: allowPrivilegeEscalation is not false")
            need("ALL" in ((csc.get("capabilities") or {}).get("drop") or []), f"k8s: {n}/{c['name']}: capabilities are not all dropped")
            for vm in c.get("volumeMounts") or []:
                need(vm["name"] in vols, f"k8s: {n}/{c['name']}: volume {vm['name']} is not defined")
        need(len(ps["containers"]) == 1, f"k8s: {n}: one container per pod expected")
        c = ps["containers"][0]
        argv = list(c.get("command") or []) + list(c.get("args") or [])
        sect = own_section(argv)
        need(sect not in work_by_sect, f"k8s: {work_by_sect.get(sect)} and {n} both run scepd-{sect}")
        work_by_sect[sect] = n
        wl[n] = {"doc": d, "labels": labels, "pod": ps, "c": c, "argv": argv, "sect": sect, "vols": vols}
    need(set(work_by_sect) == set(SECTIONS), f"k8s: workloads for {sorted(set(SECTIONS) - set(work_by_sect))} missing")
    ca = wl[work_by_sect["ca"]]
    ra = wl[work_by_sect["ra"]]
    fe = wl[work_by_sect["frontend"]]
    need(ca["doc"]["kind"] == "Deployment" and fe["doc"]["kind"] == "Deployment" and ra["doc"]["kind"] == "Deployment",
         "k8s: the frontend, RA and CA are not Deployments")
    cspec = ca["doc"]["spec"]
    need(cspec.get("replicas") == 1, f"k8s: the CA Deployment has replicas {cspec.get('replicas')}, want 1")
    need((cspec.get("strategy") or {}).get("type") == "Recreate", "k8s: the CA Deployment's strategy is not Recreate (two CAs on one LMDB)")
    for n, w in wl.items():
        for v in w["vols"].values():
            if "persistentVolumeClaim" in v:
                need(named("PersistentVolumeClaim", v["persistentVolumeClaim"]["claimName"]), f"k8s: {n}: PVC {v['persistentVolumeClaim']['claimName']} is not defined")
        if any("persistentVolumeClaim" in v for v in w["vols"].values()):
            need(w["doc"]["spec"].get("replicas") == 1 and (w["doc"]["spec"].get("strategy") or {}).get("type") == "Recreate",
                 f"k8s: {n} has a ReadWriteOnce PVC: want one replica and Recreate")
    need(any("persistentVolumeClaim" in v for v in ca["vols"].values()), "k8s: the CA has no PVC")
    # HPAs: the frontend and RA Deployments, nothing else.
    targets = {}
    for h in kind("HorizontalPodAutoscaler"):
        r = h["spec"]["scaleTargetRef"]
        need(r.get("kind") == "Deployment" and r.get("apiVersion") == "apps/v1" and r.get("name") in wl,
             f"k8s: HPA {h['metadata']['name']} targets {r}, not a Deployment here")
        need(1 <= h["spec"].get("minReplicas", 1) <= h["spec"]["maxReplicas"], f"k8s: HPA {h['metadata']['name']}: min/max replicas")
        need(h["spec"].get("metrics"), f"k8s: HPA {h['metadata']['name']} has no metrics")
        targets[wl[r["name"]]["sect"]] = h["metadata"]["name"]
    need(set(targets) == {"frontend", "ra"}, f"k8s: HPAs target {sorted(targets)}, want frontend and ra")
    for n, w in wl.items():
        if w["sect"] in targets:
            c = w["c"]
            need(((c.get("resources") or {}).get("requests") or {}).get("cpu"), f"k8s: {n}: no CPU request, which a CPU HPA needs")
            # kubectl apply would set a scaled Deployment back to it.
            need("replicas" not in w["doc"]["spec"], f"k8s: {n} is scaled by HPA {targets[w['sect']]} but sets replicas")

    def cport(w, p):
        for cp in w["c"].get("ports") or []:
            if p in (cp.get("name"), cp["containerPort"]):
                return cp["containerPort"]
        die(f"k8s: {w['doc']['metadata']['name']} has no container port {p}")

    def allowed(src, dst, port):
        """NetworkPolicy: may pods of src open `port` on pods of dst?"""
        pols = [p for p in kind("NetworkPolicy") if matches(p["spec"]["podSelector"].get("matchLabels"), dst["labels"])
                and "Ingress" in (p["spec"].get("policyTypes") or ["Ingress"])]
        if not pols:
            return True
        for p in pols:
            for rule in p["spec"].get("ingress") or []:
                peers = rule.get("from")
                ok_peer = not peers or any(
                    "podSelector" in pe and "namespaceSelector" not in pe and matches(pe["podSelector"].get("matchLabels"), src["labels"])
                    for pe in peers)
                names = [cp.get("name") for cp in dst["c"].get("ports") or [] if cp["containerPort"] == port]
                ok_port = not rule.get("ports") or any(pp.get("port") == port or pp.get("port") in names for pp in rule["ports"])
                if ok_peer and ok_port:
                    return True
        return False

    # The CA's NetworkPolicy: ingress from the RA pods only.
    capols = [p for p in kind("NetworkPolicy") if matches(p["spec"]["podSelector"].get("matchLabels"), ca["labels"])]
    need(capols, "k8s: no NetworkPolicy selects the CA pods")
    for p in capols:
        need("Ingress" in (p["spec"].get("policyTypes") or []), f"k8s: NetworkPolicy {p['metadata']['name']} does not govern the CA's Ingress")
        for rule in p["spec"].get("ingress") or []:
            need(rule.get("from"), f"k8s: NetworkPolicy {p['metadata']['name']}: an ingress rule without 'from' admits everyone to the CA")
            for pe in rule["from"]:
                need(set(pe) == {"podSelector"}, f"k8s: NetworkPolicy {p['metadata']['name']}: peer {pe} is not only a podSelector")
                sel = pe["podSelector"].get("matchLabels")
                need(matches(sel, ra["labels"]), f"k8s: NetworkPolicy {p['metadata']['name']}: peer {sel} does not select the RA pods")
                for n, w in wl.items():
                    need(w is ra or not matches(sel, w["labels"]), f"k8s: NetworkPolicy {p['metadata']['name']}: peer {sel} also selects {n}")
    # Services select exactly one workload each, on a real port.
    svc_of = {}
    for s in kind("Service"):
        sel = s["spec"].get("selector")
        hits = [n for n, w in wl.items() if matches(sel, w["labels"])]
        need(len(hits) == 1, f"k8s: Service {s['metadata']['name']} selects {hits}")
        for p in s["spec"]["ports"]:
            cport(wl[hits[0]], p.get("targetPort", p["port"]))
        svc_of[s["metadata"]["name"]] = hits[0]
    # Secrets and the ConfigMap as used; placeholders say which file each is.
    secret_files = {}
    for s in kind("Secret"):
        for k, v in (s.get("stringData") or {}).items():
            m = re.match(r"^REPLACE with the contents of (\S+)$", str(v))
            if m:
                secret_files[(s["metadata"]["name"], k)] = m.group(1)
        for k in (s.get("data") or {}):
            secret_files.setdefault((s["metadata"]["name"], k), None)
    for ing in kind("Ingress"):
        for t in ing["spec"].get("tls") or []:
            need(named("Secret", t["secretName"]), f"k8s: Ingress {ing['metadata']['name']}: Secret {t['secretName']} is not defined")
            need(named("Secret", t["secretName"]).get("type") == "kubernetes.io/tls", f"k8s: Secret {t['secretName']} is not kubernetes.io/tls")
        for r in ing["spec"].get("rules") or []:
            for p in r["http"]["paths"]:
                b = p["backend"]["service"]
                need(svc_of.get(b["name"]) == work_by_sect["frontend"], f"k8s: Ingress backend {b['name']} is not the frontends' Service")
        need(ing["spec"].get("tls"), f"k8s: Ingress {ing['metadata']['name']} does not terminate TLS")
        # Served by ingress-nginx 1.x only with a class; with tls it
        # redirects http:// (308), which http-only devices do not follow.
        need(ing["spec"].get("ingressClassName"), f"k8s: Ingress {ing['metadata']['name']} has no ingressClassName")
        need(((ing["metadata"].get("annotations") or {}).get("nginx.ingress.kubernetes.io/ssl-redirect")) == "false",
             f"k8s: Ingress {ing['metadata']['name']} redirects http:// to https:// (nginx.ingress.kubernetes.io/ssl-redirect is not \"false\")")
        # The frontends see the controller, not the devices
        # (PerIPConnectionLimit = 0): each device is limited here.
        ann = ing["metadata"].get("annotations") or {}
        for k in ("nginx.ingress.kubernetes.io/limit-connections", "nginx.ingress.kubernetes.io/limit-rpm"):
            need((ann.get(k) or "").isdigit(), f"k8s: Ingress {ing['metadata']['name']}: no {k}: one client may hold every frontend's connections")

    plan = Plan()
    ports = {}
    port_of = lambda sect: ports.setdefault(sect, free_port())
    confs = {}
    for n, w in wl.items():
        cm = [v["configMap"]["name"] for v in w["vols"].values() if "configMap" in v]
        need(len(cm) == 1, f"k8s: {n} mounts {len(cm)} ConfigMaps, want 1")
        cmd = named("ConfigMap", cm[0])
        need(cmd and "scepd.conf" in (cmd.get("data") or {}), f"k8s: {n}: ConfigMap {cm[0]} with scepd.conf is not defined")
        w["conf_text"] = cmd["data"]["scepd.conf"]
        confs[n] = parse_conf(w["conf_text"])
    need(len({w["conf_text"] for w in wl.values()}) == 1, "k8s: the workloads do not share one configuration")
    ca_port = listen_port(confs[work_by_sect["ca"]], "ca")[1]
    need(ca_port is not None, "k8s: [ca] Listen is not a tcp:// address")
    for n, w in wl.items():
        if w is not ra:
            need(not allowed(w, ca, ca_port), f"k8s: NetworkPolicy lets {n} reach the CA")
    fh, fp = listen_port(confs[fe["doc"]["metadata"]["name"]], "frontend")
    check_listen_addr("k8s", "frontend", fh)
    # The Ingress passes the SCEP paths and the CRL, in any case, and not
    # the admin page or /metrics (ingress-nginx with use-regex: each path
    # a case-blind regular expression from the path's start).
    fconf = confs[fe["doc"]["metadata"]["name"]]
    scep_paths = fconf["frontend"].get("Paths", "/certsrv/mscep/mscep.dll /scep /cgi-bin/pkiclient.exe").split()
    crl_path = fconf["frontend"].get("CRLPath", "/crl/ca.crl")
    # and the replaced CA's CRL, when one is served (CA rollover)
    crl_paths = [crl_path] + [p for p in [fconf["frontend"].get("PreviousCRLPath", "")] if p]
    admin_path = fconf["frontend"].get("AdminPath", "/certsrv/mscep_admin")
    for ing in kind("Ingress"):
        name = ing["metadata"]["name"]
        need((ing["metadata"].get("annotations") or {}).get("nginx.ingress.kubernetes.io/use-regex") == "true",
             f"k8s: Ingress {name}: its paths are regular expressions without use-regex")
        regexes = [p["path"] for r in ing["spec"].get("rules") or [] for p in r["http"]["paths"]]
        passes = lambda url: any(re.match(x, url, re.I) for x in regexes)
        for url in [u for p in scep_paths for u in (p, p + "/pkiclient.exe", p.upper())] + crl_paths + ["/scep/mdm"]:
            need(passes(url), f"k8s: Ingress {name} does not pass {url}")
        for url in [admin_path, admin_path + "/", admin_path.upper() + "/api/challenges",
                    admin_path + "/profile.mobileconfig", "/metrics", "/METRICS", "/healthz", "/"]:
            need(not passes(url), f"k8s: Ingress {name} passes {url}, which is for the cluster only")
    # Only the Ingress controller (another namespace) may reach the
    # frontends: a pod writing its own X-Forwarded-For escapes
    # WrongPasswordLimit (TrustedProxies).
    for n, w in wl.items():
        need(not allowed(w, fe, fp), f"k8s: NetworkPolicy lets {n} reach the frontends directly")
    need(cport(fe, fp) == fp, "k8s: the frontend's container port is not its Listen port")
    rp = fe["c"].get("readinessProbe") or {}
    need((rp.get("httpGet") or {}).get("path") == "/healthz" and cport(fe, rp["httpGet"]["port"]) == fp,
         "k8s: the frontend's readinessProbe is not GET /healthz on its Listen port")

    for n, w in wl.items():
        conf, sect, ps, c = confs[n], w["sect"], w["pod"], w["c"]
        root = os.path.join(work, n)
        cpath = w["argv"][2]
        conf_dir = os.path.dirname(cpath)
        host, port = listen_port(conf, sect)
        need(port is not None, f"k8s: [{sect}] Listen is not a tcp:// address")
        check_listen_addr("k8s", sect, host)
        cport(w, port)
        need(c.get("readinessProbe") and c.get("livenessProbe"), f"k8s: {n} lacks probes")
        mounts = {vm["mountPath"]: w["vols"][vm["name"]] for vm in c.get("volumeMounts") or []}
        persistent = [mp for mp, v in mounts.items() if "persistentVolumeClaim" in v]
        need(conf_dir in mounts and "emptyDir" in mounts[conf_dir], f"k8s: {n}: {conf_dir} is not the emptyDir its init container fills")
        inits = ps.get("initContainers") or []
        need(len(inits) == 1, f"k8s: {n}: want one init container to fill {conf_dir}")
        ini = inits[0]
        imounts = {vm["mountPath"]: w["vols"][vm["name"]] for vm in ini.get("volumeMounts") or []}
        need(imounts.get(conf_dir) is mounts[conf_dir], f"k8s: {n}: the init container does not fill the service's {conf_dir}")
        # What lands in conf_dir: the projected Secret items by path.
        files = set()
        os.makedirs(root)
        link(opt, root + "/opt/scepd")
        for mp, v in sorted(imounts.items()):
            if mp == conf_dir:
                os.makedirs(root + mp, exist_ok=True)
            elif "configMap" in v:
                os.makedirs(root + mp, exist_ok=True)
            elif "projected" in v or "secret" in v:
                srcs = v["projected"]["sources"] if "projected" in v else [{"secret": v["secret"]}]
                for src in srcs:
                    sname = src["secret"]["name"]
                    need(named("Secret", sname), f"k8s: {n}: Secret {sname} is not defined (secrets.yaml)")
                    for it in src["secret"].get("items") or []:
                        need((sname, it["key"]) in secret_files, f"k8s: {n}: Secret {sname} has no key {it['key']}")
                        lay = secret_files[(sname, it["key"])]
                        need(lay == it["path"], f"k8s: {n}: {sname}/{it['key']} is {lay}, mounted as {it['path']}")
                        need(os.path.exists(os.path.join(secrets, lay)), f"k8s: {lay} is not made by make-secrets.sh")
                        copy_file(os.path.join(secrets, lay), root + mp + "/" + it["path"])
                        files.add(os.path.join(conf_dir, it["path"]))
            else:
                die(f"k8s: {n}: the init container mounts {mp}, an unexpected volume")
        check_state_and_keys(f"k8s: {n}", conf, sect, conf_dir, persistent, files)
        check_secret_keys_used(f"k8s: {n}", conf, sect, conf_dir, files)
        for mp, v in mounts.items():
            if "persistentVolumeClaim" in v:
                vdir = os.path.join(work, "pvc", v["persistentVolumeClaim"]["claimName"])
                os.makedirs(vdir, mode=0o700, exist_ok=True)
                link(vdir, root + mp)

        def tcp(sct, key, h, p, w=w, n=n, sect=sect):
            if key == "Listen":
                return port_of(sct)
            h = h.split(".")[0]
            need(h in svc_of, f"k8s: [{sct}] {key}: '{h}' is not a Service")
            t = wl[svc_of[h]]
            sp = next((x for x in named("Service", h)["spec"]["ports"] if x["port"] == p), None)
            need(sp, f"k8s: [{sct}] {key}: Service {h} has no port {p}")
            tp = cport(t, sp.get("targetPort", p))
            th, lp = listen_port(confs[svc_of[h]], t["sect"])
            need(tp == lp, f"k8s: [{sct}] {key}: Service {h}:{p} leads to port {tp}, but [{t['sect']}] Listens on {lp}")
            need(sct != sect or allowed(w, t, tp), f"k8s: [{sct}] {key}: NetworkPolicy does not let {n} reach {svc_of[h]}")
            return port_of(t["sect"])
        cm_mount = next(mp for mp, v in imounts.items() if "configMap" in v)
        open(root + cm_mount + "/scepd.conf", "w").write(rewrite_conf(w["conf_text"], root, tcp))
        # The init container's own command, with its mounts under root.
        icmd = list(ini.get("command") or []) + list(ini.get("args") or [])
        fixed = []
        for a in icmd:
            for mp in sorted(imounts, key=len, reverse=True):
                a = re.sub(r"(?<![\w/])" + re.escape(mp) + r"(?=/|\b|$)", lambda _m, r=root + mp: r, a)
            fixed.append(a)
        plan.emit("init", json.dumps(fixed))
        plan.start(sect, [root + a if a.startswith("/") else a for a in w["argv"]])
        # Its probes, made here against the local port.
        for pr in (c.get("readinessProbe"), c.get("livenessProbe")):
            if "httpGet" in pr:
                need(cport(w, pr["httpGet"]["port"]) == port, f"k8s: {n}: a probe is not on its Listen port")
                hc = ["curl", "-fsS", "-m", "3", "-o", "/dev/null", "http://127.0.0.1:%d%s" % (port_of(sect), pr["httpGet"]["path"])]
            elif "exec" in pr:
                need(pr.get("timeoutSeconds", 1) >= 2, f"k8s: {n}: an exec probe with the default timeoutSeconds, 1 s")
                hc = probe_argv(f"k8s: {n}", sect, list(pr["exec"]["command"]), root, conf_dir, port, port_of(sect))
            else:
                die(f"k8s: {n}: a probe neither httpGet nor exec (a tcpSocket probe succeeds while the service hangs)")
            plan.emit("health", sect + "\t" + json.dumps(hc))
    # While the CA hangs the RA's workers wait on it: the CA's liveness
    # probe must restart it before the RA's gives up on the RA.
    def given_up_after(sect):
        lp = next(w["c"]["livenessProbe"] for w in wl.values() if w["sect"] == sect)
        return lp.get("initialDelaySeconds", 0) + lp.get("periodSeconds", 10) * lp.get("failureThreshold", 3)
    need(given_up_after("ra") > given_up_after("ca"),
         f"k8s: the RA's liveness probe gives up after {given_up_after('ra')} s, the CA's after {given_up_after('ca')} s: a hung CA would get the RA pods restarted")
    plan.emit("http", port_of("frontend"))
    plan.emit("ctl", os.path.join(work, work_by_sect["ca"]) + os.path.dirname(ca["argv"][2]))
    plan.write()


# --- systemd -----------------------------------------------------------------------

def read_unit(path):
    u = {}
    sect = None
    for line in open(path):
        s = line.strip()
        if not s or s[0] in "#;":
            continue
        if s.startswith("["):
            sect = s[1:-1]
            continue
        k, v = (x.strip() for x in s.split("=", 1))
        u.setdefault((sect, k), []).append(v)
    return u


def systemd(udir, sysusers, conf_file, root, secrets):
    users = {}
    for line in open(sysusers):
        f = shlex.split(line, comments=True)
        if f and f[0] == "u":
            users[f[1]] = True
    units = {}
    for f in sorted(os.listdir(udir)):
        if f.endswith(".service"):
            units[f] = read_unit(os.path.join(udir, f))
    need(os.path.exists(os.path.join(udir, "scepd.target")), "systemd: no scepd.target")
    tgt = read_unit(os.path.join(udir, "scepd.target"))
    one = lambda u, k, sect="Service": (u.get((sect, k)) or [None])[-1]
    by_sect, info = {}, {}
    for f, u in units.items():
        argv = shlex.split(one(u, "ExecStart"))
        sect = own_section(argv)
        need(sect not in by_sect, f"systemd: {by_sect.get(sect)} and {f} both run scepd-{sect}")
        by_sect[sect] = f
        for k, want in (("ProtectSystem", "strict"), ("PrivateTmp", "yes"), ("NoNewPrivileges", "yes"),
                        ("CapabilityBoundingSet", ""), ("Restart", "on-failure"), ("ConfigurationDirectory", "scepd")):
            need(one(u, k) == want, f"systemd: {f}: {k}={one(u, k)}, want {k}={want}")
        user = one(u, "User")
        need(user and (one(u, "DynamicUser") == "yes" or user in users), f"systemd: {f}: User={user} is not made by {os.path.basename(sysusers)}")
        need(re.match(r"^0?0[0-7]7$", one(u, "UMask") or ""), f"systemd: {f}: UMask={one(u, 'UMask')} leaves files and sockets open to others")
        need(f"{f}" in " ".join(tgt.get(("Unit", "Wants"), [])), f"systemd: scepd.target does not want {f}")
        need("scepd.target" in " ".join(u.get(("Install", "WantedBy"), [])), f"systemd: {f} is not WantedBy=scepd.target")
        need("scepd.target" in " ".join(u.get(("Unit", "PartOf"), [])), f"systemd: {f} is not PartOf=scepd.target")
        groups = set((one(u, "SupplementaryGroups") or "").split()) | {user, one(u, "Group") or user}
        rundirs = ["/run/" + d for d in (one(u, "RuntimeDirectory") or "").split()]
        state = ["/var/lib/" + d for d in (one(u, "StateDirectory") or "").split()]
        info[sect] = {"unit": f, "argv": argv, "user": user, "group": one(u, "Group") or user, "groups": groups,
                      "rundirs": rundirs, "rundir_mode": one(u, "RuntimeDirectoryMode") or "0755", "state": state,
                      "after": " ".join(u.get(("Unit", "After"), []))}
        need(os.path.dirname(argv[2]) == "/etc/scepd", f"systemd: {f}: --config is not in /etc/scepd (ConfigurationDirectory)")
        # Restarted for as long as it fails, as the launcher does: with a
        # start limit systemd leaves it failed after a few quick tries.
        need(re.match(r"^[0-9]+[KMG]$", one(u, "MemoryMax") or ""),
             f"systemd: {f}: MemoryMax={one(u, 'MemoryMax')}: no memory limit")
        need(one(u, "StartLimitIntervalSec", "Unit") == "0",
             f"systemd: {f}: StartLimitIntervalSec={one(u, 'StartLimitIntervalSec', 'Unit')}: gives up restarting, want 0")
    need(set(by_sect) == set(SECTIONS), f"systemd: units for {sorted(set(SECTIONS) - set(by_sect))} missing")
    need(len({i["user"] for i in info.values()}) == 4, "systemd: the services do not each have their own user")
    for a, b in (("ra", "ca"), ("ra", "challenge"), ("frontend", "ra")):
        need(info[b]["unit"] in info[a]["after"], f"systemd: {info[a]['unit']} is not After={info[b]['unit']}")
    text = open(conf_file).read()
    conf = parse_conf(text)
    listeners = {}
    for sect in SECTIONS:
        l = conf[sect]["Listen"]
        if sect == "frontend":
            continue
        need(l.startswith("ipc:///"), f"systemd: [{sect}] Listen = {l}: one host uses absolute ipc:// paths")
        p = l[6:]
        need(os.path.dirname(p) in info[sect]["rundirs"], f"systemd: [{sect}] Listen {p} is not in {info[sect]['unit']}'s RuntimeDirectory")
        need(int(info[sect]["rundir_mode"], 8) & 0o007 == 0, f"systemd: {info[sect]['unit']}: RuntimeDirectoryMode={info[sect]['rundir_mode']} lets others in")
        listeners[p] = sect
    for sect in SECTIONS:
        check_state_and_keys(f"systemd: {info[sect]['unit']}", conf, sect, "/etc/scepd", info[sect]["state"], None)
    reach = {}

    def ipc(sct, key, p):
        if key == "Listen":
            return
        need(p in listeners, f"systemd: [{sct}] {key} = ipc://{p}: nobody listens there")
        lst = listeners[p]
        need(info[lst]["group"] in info[sct]["groups"] or info[lst]["user"] == info[sct]["user"],
             f"systemd: [{sct}] {key}: {info[sct]['unit']} is not in group {info[lst]['group']} of {p}")
        reach.setdefault(sct, set()).add(lst)

    def tcp(sct, key, h, p):
        need(sct == "frontend" and key == "Listen", f"systemd: [{sct}] {key}: tcp:// between services on one host")
        return port

    port = free_port()
    rewritten = rewrite_conf(text, root, tcp, ipc)
    for sect in SECTIONS:
        for lst in SECTIONS:
            if lst == sect or lst not in [listeners[p] for p in listeners]:
                continue
            member = info[lst]["group"] in info[sect]["groups"]
            need(not member or lst in reach.get(sect, set()), f"systemd: {info[sect]['unit']} is in group {info[lst]['group']} but does not use {info[lst]['unit']}")
    need(info["ca"]["group"] not in info["frontend"]["groups"], "systemd: the frontend may connect to the CA's socket")
    # CallerUsers: each server names the user of every service that
    # reaches it, the one its unit runs as (the challenge service tells
    # the frontend from the RA by it).
    for lst in set(listeners.values()):
        callers = {sct for sct in reach if lst in reach[sct]}
        listed = dict(x.split(":", 1) for x in conf[lst].get("CallerUsers", "").split())
        need(set(listed) == callers, f"systemd: [{lst}] CallerUsers names {sorted(listed)}, but {sorted(callers)} reach it")
        for name, user in listed.items():
            need(name in info and info[name]["user"] == user,
                 f"systemd: [{lst}] CallerUsers {name}:{user}, but {info.get(name, {}).get('unit')} runs as {info.get(name, {}).get('user')}")
    os.makedirs(root + "/etc/scepd", exist_ok=True)
    for dp, dn, fn in os.walk(secrets):
        for f in fn:
            rel = os.path.relpath(os.path.join(dp, f), secrets)
            copy_file(os.path.join(dp, f), root + "/etc/scepd/" + rel)
    open(root + "/etc/scepd/scepd.conf", "w").write(rewritten)
    plan = Plan()
    for sect in SECTIONS:
        for d in info[sect]["rundirs"] + info[sect]["state"]:
            os.makedirs(root + d, mode=0o700, exist_ok=True)
        plan.start(sect, [root + a if a.startswith("/") else a for a in info[sect]["argv"]])
    plan.emit("http", port)
    plan.emit("ctl", root + "/etc/scepd")
    plan.write()


if __name__ == "__main__":
    cmd, args = sys.argv[1], sys.argv[2:]
    {"dockerfile": dockerfile, "compose": compose, "k8s": k8s, "systemd": systemd}[cmd](*args)
PYEOF
checker() {
	"$PY" "$WORK/deploy_check.py" "$@" 2> "$WORK/checker.err" || {
		# (stdout is the plan file)
		sed 's/^/   | /' "$WORK/checker.err" >&2
		fail "$(tail -n 1 "$WORK/checker.err")" >&2
	}
}

# --- the installed layout and the secrets ---------------------------------------
ROOT="$WORK/root"
OPT="$ROOT/opt/scepd"
check "cmake --install: bin/ and lib/scepd/plugins/ under the prefix"
cmake --install "$BUILD_DIR" --prefix "$OPT" > "$WORK/install.log" 2>&1 ||
	{ cat "$WORK/install.log"; fail "cmake --install failed"; }
for b in scepd scepd-init scepctl scepd-frontend scepd-ra scepd-challenge scepd-ca; do
	[ -x "$OPT/bin/$b" ] || fail "cmake --install did not install bin/$b"
done
ls "$OPT"/lib/scepd/plugins/scepd-*.so > /dev/null 2>&1 || fail "no plugins in lib/scepd/plugins"

check "the installed services find their plugins in lib/scepd/plugins without PluginDir"
# A demo directory of the installed scepd-init, and a validator plugin
# whose section lacks its URL: the plugin itself must say so.
"$OPT/bin/scepd-init" --data-dir "$WORK/plugin-demo" > "$WORK/plugin-demo.log" 2>&1 ||
	{ cat "$WORK/plugin-demo.log"; fail "the installed scepd-init"; }
printf '\n[validator.w]\nModule = webhook\n' >> "$WORK/plugin-demo/scepd.conf"
timeout -s KILL 30 "$OPT/bin/scepd-challenge" --config "$WORK/plugin-demo/scepd.conf" > "$WORK/plugin-demo.log" 2>&1 || true
grep -q '\[validator.w\] URL: required' "$WORK/plugin-demo.log" ||
	{ cat "$WORK/plugin-demo.log"; fail "the installed scepd-challenge did not load lib/scepd/plugins/scepd-webhook.so"; }

check "deploy/make-secrets.sh makes CA, RA, CurveZMQ keys and the admin account"
SECRETS="$WORK/secrets"
"$DEPLOY/make-secrets.sh" --bin-dir "$OPT/bin" --tls scep.example.com "$SECRETS" > "$WORK/make-secrets.log" 2>&1 ||
	{ cat "$WORK/make-secrets.log"; fail "make-secrets.sh failed"; }
for f in ca/ca.pem ca/ca.key ra/ra-sign.pem ra/ra-sign.key ra/ra-enc.pem ra/ra-enc.key \
	admin.passwd admin.credentials keys/{ca,ra,challenge,frontend,scepctl}.{key,pub} tls/scepd.pem; do
	[ -s "$SECRETS/$f" ] || fail "make-secrets.sh did not make $f"
	case $f in
	*.key | admin.* | tls/*) [ "$(stat -c %a "$SECRETS/$f")" = 600 ] || fail "$f is not mode 0600" ;;
	esac
done
if "$DEPLOY/make-secrets.sh" --bin-dir "$OPT/bin" "$SECRETS" > /dev/null 2>&1; then
	fail "make-secrets.sh wrote into a directory that has keys"
fi
CREDS=$(head -n 1 "$SECRETS/admin.credentials" | tr -d '\r\n')

# --- Dockerfile ------------------------------------------------------------------
check "deploy/Dockerfile: debian:12 build through scripts/deps.sh, debian:12-slim run as 10001"
checker dockerfile "$DEPLOY/Dockerfile" "$SRC_DIR/scripts/deps.sh" "$SRC_DIR" "$WORK/image.json" > "$WORK/runtime-pkgs"
mapfile -t RUNTIME_PKGS < "$WORK/runtime-pkgs"
echo "   runtime packages: ${RUNTIME_PKGS[*]}"

check "every runtime package exists in Debian 12 (apt-cache show)"
grep -q '^12\.' /etc/debian_version 2>/dev/null ||
	echo "   (this is not Debian 12: $(cat /etc/debian_version 2>/dev/null); checking its archive)"
[[ "$(apt-cache policy libc6 2> /dev/null)" == *"Candidate: "[0-9]* ]] ||
	fail "apt has no package lists (run apt-get update)"
apt-cache show --no-all-versions "${RUNTIME_PKGS[@]}" 2> /dev/null |
	sed -n 's/^Package: //p' | sort -u > "$WORK/shown" || true
for p in "${RUNTIME_PKGS[@]}"; do
	grep -qxF "$p" "$WORK/shown" || fail "runtime package $p is not in the archive"
done

check "the runtime packages provide every library the installed programs and plugins link"
apt-cache depends --recurse --no-recommends --no-suggests --no-conflicts --no-breaks \
	--no-replaces --no-enhances "${RUNTIME_PKGS[@]}" 2> /dev/null |
	grep -v '^ ' | sed 's/:.*//' | sort -u > "$WORK/closure"
for f in "$OPT"/bin/* "$OPT"/lib/scepd/plugins/*.so; do
	[ "$(head -c 4 "$f" | od -An -tx1 | tr -d ' \n')" = 7f454c46 ] || continue
	ldd "$f" | awk '/=> \// { print $3 }'
done | sort -u > "$WORK/libs"
[ -s "$WORK/libs" ] || fail "ldd found no libraries"
# One dpkg -S for all (it is slow): each library under its names with and
# without /usr and resolved, as dpkg may know any of them.
while read -r lib; do
	printf '%s\n' "$lib" "$(readlink -f "$lib")" "/usr${lib#/usr}" "${lib#/usr}"
done < "$WORK/libs" | sort -u > "$WORK/lib-names"
xargs dpkg -S < "$WORK/lib-names" 2> /dev/null > "$WORK/owners" || true
while read -r lib; do
	pkg=
	for cand in "$lib" "$(readlink -f "$lib")" "/usr${lib#/usr}" "${lib#/usr}"; do
		pkg=$(awk -v f="$cand" '{ p = $0; sub(/: .*/, "", p); path = substr($0, length(p) + 3) }
			path == f { sub(/:.*/, "", p); sub(/, .*/, "", p); print p; exit }' "$WORK/owners")
		[ -n "$pkg" ] && break
	done
	[ -n "$pkg" ] || fail "no Debian package owns $lib"
	case $pkg in lib[alt]san[0-9]* | libubsan[0-9]*) continue ;; esac # sanitizer builds
	grep -qxF "$pkg" "$WORK/closure" ||
		fail "$lib ($pkg) is linked but the Dockerfile's runtime packages do not bring it"
done < "$WORK/libs"
echo "   $(wc -l < "$WORK/libs") libraries, all from the runtime packages"

# --- running a plan ----------------------------------------------------------------
# Starts every "start" line of plan $1 (variant $2), checks they stay up 2 s,
# then enrolls through the frontend and asks scepctl on the CA side.
run_plan() {
	local plan=$1 v=$2 kind name rest http='' ctl='' argv n h
	local HEALTH=()
	PIDS=()
	PIDS_ORDER=()
	while IFS=$'\t' read -r kind name rest; do
		case $kind in
		init)
			# Kubernetes: the pod's init container, its command as given.
			mapfile -t argv < <("$PY" -c 'import json,sys; print("\n".join(json.loads(sys.argv[1])))' "$name")
			"${argv[@]}" > "$WORK/$v-init.log" 2>&1 ||
				{ cat "$WORK/$v-init.log"; fail "$v: the init container's command failed: ${argv[*]}"; }
			;;
		http) http=$name ;;
		ctl) ctl=$name ;;
		health) HEALTH+=("$name"$'\t'"$rest") ;;
		start)
			IFS=$'\t' read -r -a argv <<< "$rest"
			setsid "${argv[@]}" > "$WORK/$v-$name.log" 2>&1 &
			PIDS[$name]=$!
			PIDS_ORDER+=("$name")
			echo "   $v: started $name: ${argv[*]#"$WORK/"}"
			;;
		esac
	done < "$plan"
	[ ${#PIDS_ORDER[@]} = 4 ] || fail "$v: ${#PIDS_ORDER[@]} services planned, want 4"
	sleep 2
	for n in "${PIDS_ORDER[@]}"; do
		if ! kill -0 "${PIDS[$n]}" 2> /dev/null; then
			local rc=0
			wait "${PIDS[$n]}" || rc=$?
			sed 's/^/   | /' "$WORK/$v-$n.log"
			fail "$v: scepd-$n exited with status $rc within 2 s of its start"
		fi
	done
	BASE="http://127.0.0.1:$http"
	URL="$BASE/certsrv/mscep/mscep.dll"
	local deadline=$((SECONDS + 20))
	until curl -sf -m 2 "$BASE/healthz" > /dev/null 2>&1; do
		[ $SECONDS -lt $deadline ] || { show_logs "$v"; fail "$v: /healthz did not answer"; }
		sleep 0.2
	done
	[ ${#HEALTH[@]} = 0 ] ||
		check "$v: each service's health check (or probe) passes, and leaves it running"
	for h in "${HEALTH[@]}"; do
		n=${h%%$'\t'*}
		mapfile -t argv < <("$PY" -c 'import json,sys; print("\n".join(json.loads(sys.argv[1])))' "${h#*$'\t'}")
		timeout 10 "${argv[@]}" > "$WORK/$v-health.out" 2>&1 ||
			{ cat "$WORK/$v-health.out"; show_logs "$v"; fail "$v: the health check of $n failed: ${argv[*]}"; }
	done
	sleep 0.5
	for n in "${PIDS_ORDER[@]}"; do
		kill -0 "${PIDS[$n]}" 2> /dev/null || { show_logs "$v"; fail "$v: scepd-$n died after its health check"; }
	done
	[ ${#HEALTH[@]} = 0 ] || echo "   ${#HEALTH[@]} health checks passed"
	# What a health check is for: a service that no longer answers (an
	# HSM that hangs the CA, a deadlock) fails it, whereas a TCP connect
	# to its port still succeeds (the kernel accepts for it).
	[ ${#HEALTH[@]} = 0 ] ||
		check "$v: a hung service (SIGSTOP) fails its health check, and passes it again once it goes on"
	local -A hung_seen=()
	local t0 hrc
	for h in "${HEALTH[@]}"; do
		n=${h%%$'\t'*}
		[ -z "${hung_seen[$n]:-}" ] || continue
		hung_seen[$n]=1
		mapfile -t argv < <("$PY" -c 'import json,sys; print("\n".join(json.loads(sys.argv[1])))' "${h#*$'\t'}")
		kill -STOP "${PIDS[$n]}"
		t0=$SECONDS
		hrc=0
		timeout 20 "${argv[@]}" > "$WORK/$v-health.out" 2>&1 || hrc=$?
		kill -CONT "${PIDS[$n]}"
		[ $hrc != 0 ] || { cat "$WORK/$v-health.out"; fail "$v: the health check of $n passed while scepd-$n was stopped: ${argv[*]}"; }
		[ $hrc != 124 ] || fail "$v: the health check of $n did not end within 20 s while scepd-$n was stopped"
		echo "   $n stopped: its check failed (status $hrc, $((SECONDS - t0)) s): $(head -c 200 "$WORK/$v-health.out")"
		timeout 10 "${argv[@]}" > "$WORK/$v-health.out" 2>&1 ||
			{ cat "$WORK/$v-health.out"; show_logs "$v"; fail "$v: the health check of $n failed after scepd-$n went on"; }
	done
	check "$v: a device enrolls through the frontend, with a password from the admin page"
	local pw
	pw=$(curl -sf -m 10 -u "$CREDS" -H 'Accept: application/json' "$BASE/certsrv/mscep_admin/" |
		"$PY" -c 'import json,sys; print(json.load(sys.stdin)["password"])') ||
		{ show_logs "$v"; fail "$v: no password from the admin page"; }
	# shellcheck disable=SC2034 # lib.sh's, reset: verify_cert fetches it anew
	CA_PEM=''
	ios_enroll "$pw" "CN=deploy $v" "$WORK/$v.pem" "$URL" || { show_logs "$v"; fail "$v: enrollment failed"; }
	verify_cert "$WORK/$v.pem"
	local serial
	serial=$(openssl x509 -in "$WORK/$v.pem" -noout -serial | cut -d= -f2)
	"$OPT/bin/scepctl" --data-dir "$ctl" list > "$WORK/$v-list.out" 2>&1 ||
		{ cat "$WORK/$v-list.out"; show_logs "$v"; fail "$v: scepctl list on the CA side failed"; }
	grep -qi "$serial" "$WORK/$v-list.out" || grep -q "deploy $v" "$WORK/$v-list.out" ||
		{ cat "$WORK/$v-list.out"; fail "$v: scepctl list does not show the new certificate"; }
	echo "   scepctl list on the CA side shows serial $serial"
	stop_plan "$v"
}

show_logs() {
	local n
	for n in "${PIDS_ORDER[@]}"; do
		echo "---- $1: scepd-$n"
		tail -n 20 "$WORK/$1-$n.log"
	done
}

# SIGTERM in reverse order; each must exit 0 within 10 s.
stop_plan() {
	local v=$1 i n pid rc
	for ((i = ${#PIDS_ORDER[@]} - 1; i >= 0; i--)); do
		n=${PIDS_ORDER[$i]}
		pid=${PIDS[$n]}
		kill -TERM "$pid" 2> /dev/null || true
		for _ in $(seq 100); do
			kill -0 "$pid" 2> /dev/null || break
			sleep 0.1
		done
		if kill -0 "$pid" 2> /dev/null; then
			kill -KILL -- "-$pid" 2> /dev/null || true
			fail "$v: scepd-$n did not stop within 10 s of SIGTERM"
		fi
		rc=0
		wait "$pid" || rc=$?
		[ $rc = 0 ] || { sed 's/^/   | /' "$WORK/$v-$n.log"; fail "$v: scepd-$n exited $rc after SIGTERM, want 0"; }
		sanitizer_check "$WORK/$v-$n.log"
		unset "PIDS[$n]"
	done
	PIDS_ORDER=()
}

kill_leftovers() {
	local n
	for n in "${!PIDS[@]}"; do
		kill -KILL -- "-${PIDS[$n]}" 2> /dev/null || kill -KILL "${PIDS[$n]}" 2> /dev/null || true
		{ wait "${PIDS[$n]}"; } 2> /dev/null || true
	done
}
on_exit kill_leftovers

# --- docker compose --------------------------------------------------------------------
check "docker-compose config accepts deploy/docker-compose.yml"
(cd "$SRC_DIR" && docker-compose -f deploy/docker-compose.yml config) > "$WORK/compose.yml" 2> "$WORK/compose.err" ||
	{ cat "$WORK/compose.err"; fail "docker-compose config failed"; }
if grep -Ei 'warn|error' "$WORK/compose.err"; then
	fail "docker-compose config has something to say"
fi

check "compose: the CA isolated with the RA, read-only, no capabilities; secrets and volumes; haproxy with TLS"
checker compose "$WORK/compose.yml" "$WORK/image.json" "$DEPLOY/compose" "$SECRETS" "$OPT" "$WORK/compose" > "$WORK/compose.plan"

if command -v haproxy > /dev/null 2>&1; then
	check "compose: haproxy -c accepts deploy/compose/haproxy.cfg"
	sed "s|/run/secrets/tls.pem|$SECRETS/tls/scepd.pem|" "$DEPLOY/compose/haproxy.cfg" > "$WORK/haproxy.cfg"
	haproxy -c -f "$WORK/haproxy.cfg" > "$WORK/haproxy.out" 2>&1 ||
		{ cat "$WORK/haproxy.out"; fail "haproxy -c"; }
else
	echo "   (haproxy is not installed: its configuration is checked by the rules above only)"
fi

check "compose: each service starts with the command and configuration its container gets"
run_plan "$WORK/compose.plan" compose

# --- Kubernetes -------------------------------------------------------------------------
check "k8s: manifests parse; HPAs, single CA with a PVC and a NetworkPolicy for the RA only, Services, Secrets"
checker k8s "$DEPLOY/k8s" "$SECRETS" "$OPT" "$WORK/k8s" > "$WORK/k8s.plan"

check "k8s: each service starts with its container's command and the ConfigMap"
run_plan "$WORK/k8s.plan" k8s

# --- systemd ----------------------------------------------------------------------------
check "systemd: systemd-analyze verify in a root with the installed programs says nothing"
mkdir -p "$ROOT/usr/lib/systemd" "$ROOT/etc/systemd/system"
cp -a /usr/lib/systemd/system "$ROOT/usr/lib/systemd/" 2> /dev/null ||
	cp -a /lib/systemd/system "$ROOT/usr/lib/systemd/"
UNITS=()
for u in "$DEPLOY"/systemd/*.service "$DEPLOY"/systemd/*.target; do
	cp "$u" "$ROOT/etc/systemd/system/"
	UNITS+=("$(basename "$u")")
done
[ ${#UNITS[@]} -ge 5 ] || fail "want four services and scepd.target in deploy/systemd"
if ! systemd-analyze verify --root="$ROOT" "${UNITS[@]}" > "$WORK/verify.out" 2>&1 ||
	grep -q . "$WORK/verify.out"; then
	cat "$WORK/verify.out"
	fail "systemd-analyze verify"
fi
# It does look: a unit whose program is missing fails.
sed 's|^ExecStart=/opt/scepd/bin/scepd-ca|ExecStart=/opt/scepd/bin/scepd-nothing|' \
	"$DEPLOY/systemd/scepd-ca.service" > "$ROOT/etc/systemd/system/scepd-broken.service"
if systemd-analyze verify --root="$ROOT" scepd-broken.service > /dev/null 2>&1; then
	fail "systemd-analyze verify does not check ExecStart in the root"
fi
rm -f "$ROOT/etc/systemd/system/scepd-broken.service"

check "systemd: exposure of each service at most 4.0 (systemd-analyze security --offline)"
for u in "${UNITS[@]}"; do
	case $u in *.service) ;; *) continue ;; esac
	systemd-analyze security --offline=true --root="$ROOT" --threshold=40 "$u" > "$WORK/security.out" 2>&1 ||
		{ tail -n 30 "$WORK/security.out"; fail "$u: exposure above 4.0"; }
	echo "   $(grep -o 'Overall exposure level.*' "$WORK/security.out")"
done

check "systemd: the sysusers file makes the units' users and groups"
systemd-sysusers --root="$ROOT" "$DEPLOY/systemd/scepd.sysusers" > "$WORK/sysusers.out" 2>&1 ||
	{ cat "$WORK/sysusers.out"; fail "systemd-sysusers"; }
for u in "${UNITS[@]}"; do
	# shellcheck disable=SC2013 # names, one or more per line
	for name in $(sed -n 's/^\(User\|Group\|SupplementaryGroups\)=//p' "$DEPLOY/systemd/$u"); do
		grep -q "^$name:" "$ROOT/etc/group" || fail "$u: group or user $name is not made by scepd.sysusers"
	done
done

check "systemd: sockets by group (the frontend cannot reach the CA), state in StateDirectory"
checker systemd "$DEPLOY/systemd" "$DEPLOY/systemd/scepd.sysusers" "$DEPLOY/systemd/scepd.conf" "$ROOT" "$SECRETS" > "$WORK/systemd.plan"

check "systemd: each service starts with its unit's ExecStart and deploy/systemd/scepd.conf"
# Their CallerUsers name the units' users, which must exist here (the
# services run as root in this test; CallerUsers lets root through).
"$SRC_DIR/scripts/users.sh" > /dev/null || fail "scripts/users.sh"
run_plan "$WORK/systemd.plan" systemd

pass "Dockerfile packages, compose, k8s and systemd checked; each variant's services started as deployed and enrolled a device"
