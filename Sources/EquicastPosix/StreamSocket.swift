import CEquicastShims
import EquicastCore

/// A non-blocking stream socket (TCP, or a Unix socket accepted by a listener). Owns its descriptor.
public final class StreamSocket {
    public let fd: Int32
    /// True until a non-blocking connect has completed.
    public private(set) var connecting: Bool

    init(fd: Int32, connecting: Bool) {
        self.fd = fd
        self.connecting = connecting
    }

    deinit { close(fd) }

    /// Starts a non-blocking TCP connection; completion shows as writability (see `finishConnect`).
    /// - Parameter receiveBuffer: when above 0, the socket's receive buffer (SO_RCVBUF, which Linux doubles),
    ///   set before the handshake so that the window the peer may fill never grows past it.
    public static func connect(to address: SocketAddress, receiveBuffer: Int = 0) throws(PosixError) -> StreamSocket {
        let family = address.family == .ipv6 ? equicast_af_inet6() : equicast_af_inet()
        let fd = try retryingSyscall("socket") { socket(family, equicast_sock_stream(), 0) }
        if receiveBuffer > 0 && equicast_set_rcvbuf(fd, Int32(clamping: receiveBuffer)) != 0 {
            let code = equicast_errno()
            close(fd)
            throw .syscall(name: "setsockopt SO_RCVBUF", errno: code)
        }
        var ep = address.endpoint
        if equicast_connect(fd, &ep) != 0 {
            let code = equicast_errno()
            if code != EINPROGRESS {
                close(fd)
                throw .syscall(name: "connect \(address)", errno: code)
            }
            return StreamSocket(fd: fd, connecting: true)
        }
        return StreamSocket(fd: fd, connecting: false)
    }

    /// Completes a connect once the socket polled writable; throws the connect's error.
    public func finishConnect() throws(PosixError) {
        guard connecting else { return }
        let code = equicast_socket_error(fd)
        if code != 0 { throw .syscall(name: "connect", errno: code) }
        connecting = false
    }

    /// Makes poll report the socket readable only once `bytes` are waiting (or at end of stream, or on an
    /// error), so a reader that knows how much it needs is woken once for it, not for every segment. A hint:
    /// the kernel still wakes the reader early when its receive window would otherwise close.
    public func setReceiveLowWater(_ bytes: Int) throws(PosixError) {
        if equicast_set_rcvlowat(fd, Int32(clamping: max(1, bytes))) != 0 {
            throw .syscall(name: "setsockopt SO_RCVLOWAT", errno: equicast_errno())
        }
    }

    /// Reads what is available, at most `limit` bytes: empty array at end of stream, nil when nothing is waiting.
    public func read(limit: Int = 65536) throws(PosixError) -> [UInt8]? {
        var buffer = [UInt8](repeating: 0, count: limit)
        guard let n = try read(into: &buffer) else { return nil }
        buffer.removeSubrange(n...)
        return buffer
    }

    /// Reads what is available into `buffer` (from its start, at most its count): the count read, 0 at end of
    /// stream, nil when nothing is waiting. The caller keeps one buffer for every read, so a busy connection
    /// costs no allocation per read.
    public func read(into buffer: inout [UInt8]) throws(PosixError) -> Int? {
        while true {
            let n = buffer.withUnsafeMutableBytes { CEquicastShims.read(fd, $0.baseAddress, $0.count) }
            if n >= 0 { return n }
            let code = equicast_errno()
            if code == EINTR { continue }
            if equicast_errno_is_would_block(code) != 0 { return nil }
            throw .syscall(name: "read", errno: code)
        }
    }

    /// Writes as much of `bytes[offset...]` as the socket takes; returns the count written (0 when full).
    public func write(_ bytes: [UInt8], from offset: Int) throws(PosixError) -> Int {
        while true {
            let n = bytes.withUnsafeBytes { equicast_send(fd, $0.baseAddress! + offset, $0.count - offset) }
            if n >= 0 { return n }
            let code = equicast_errno()
            if code == EINTR { continue }
            if equicast_errno_is_would_block(code) != 0 { return 0 }
            throw .syscall(name: "write", errno: code)
        }
    }
}

/// A listening TCP or Unix socket.
public final class Listener {
    public let fd: Int32
    public let path: String?
    private let inode: UInt64

    /// TCP on `address` (SO_REUSEADDR, so a restarted agent can bind again at once).
    public init(tcp address: SocketAddress) throws(PosixError) {
        let family = address.family == .ipv6 ? equicast_af_inet6() : equicast_af_inet()
        let fd = try retryingSyscall("socket") { socket(family, equicast_sock_stream(), 0) }
        var ep = address.endpoint
        do throws(PosixError) {
            _ = try retryingSyscall("setsockopt SO_REUSEADDR") { equicast_set_reuseaddr(fd) }
            _ = try retryingSyscall("bind TCP \(address)") { equicast_bind(fd, &ep) }
            _ = try retryingSyscall("listen") { listen(fd, 64) }
        } catch {
            close(fd)
            throw error
        }
        self.fd = fd
        self.path = nil
        self.inode = 0
    }

    /// A Unix socket at `path`, mode 0600 (only the agent's user may talk to it). A file already there is
    /// replaced only when it is a socket nobody listens on (a previous run's); any other file is never touched.
    public init(unixPath: String) throws(PosixError) {
        var inode: UInt64 = 0
        let fd = equicast_unix_listen(unixPath, &inode)
        if fd < 0 {
            let code = equicast_errno()
            if code == ENOTSOCK { throw .notASocket(path: unixPath) }
            if code == EADDRINUSE { throw .socketInUse(path: unixPath) }
            throw .file(path: unixPath, operation: "listen on control socket", errno: code)
        }
        self.fd = fd
        self.path = unixPath
        self.inode = inode
    }

    deinit {
        close(fd)
        // Only the socket this listener made: never a file someone put there since.
        if let path { equicast_unix_unlink(path, inode) }
    }

    /// Accepts one pending connection, or nil when none is waiting; with the peer's address (nil on a Unix
    /// socket).
    public func accept() throws(PosixError) -> (socket: StreamSocket, from: SocketAddress?)? {
        var from = equicast_endpoint()
        while true {
            let c = equicast_accept(fd, &from)
            if c >= 0 {
                return (StreamSocket(fd: c, connecting: false), path == nil ? SocketAddress(endpoint: from) : nil)
            }
            let code = equicast_errno()
            if code == EINTR || code == ECONNABORTED { continue }
            if equicast_errno_is_would_block(code) != 0 { return nil }
            throw .syscall(name: "accept", errno: code)
        }
    }
}

/// Signals for the daemon's loop.
public enum Signals {
    public static func install() { equicast_install_signal_handlers() }
    /// (terminate, reload) requested since the last call.
    public static func take() -> (terminate: Bool, reload: Bool) {
        let bits = equicast_take_signals()
        return (bits & 1 != 0, bits & 2 != 0)
    }

    /// On a trap or fatal signal, print `text` to stderr and exit with `exitCode` (the simulator's way of
    /// turning a crash of the code under test into a reproducible report).
    public static func reportCrashes(_ text: String, exitCode: Int32) {
        equicast_install_crash_report(text, exitCode)
    }
}
