"""What the benchmark scripts share: one request to an agent's control socket, /proc figures, polling, cleanup."""
import signal
import socket
import time


def control_request(path, line):
    """Sends one line to the control socket at `path`; returns the reply, or "" when the agent does not answer."""
    s = socket.socket(socket.AF_UNIX)
    try:
        s.settimeout(2)
        s.connect(path)
        s.sendall(line.encode() + b"\n")
        data = b""
        while d := s.recv(65536):
            data += d
        return data.decode()
    except OSError:
        return ""
    finally:
        s.close()


def proc_status_kib(pid, field):
    """A kB figure of /proc/PID/status (VmRSS, VmHWM, ...); 0 once the process is gone."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except FileNotFoundError:
        pass
    return 0


def wait_for(condition, timeout, step=0.05):
    """Polls `condition` until it holds; the seconds it took, or None after `timeout`."""
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        if condition():
            return time.monotonic() - start
        time.sleep(step)
    return None


def kill_all(procs):
    """SIGKILL to every process still running in `procs` (a dict of Popen), and waits for each."""
    for p in procs.values():
        if p.poll() is None:
            p.send_signal(signal.SIGKILL)
        p.wait()
