import CEquicastShims
import EquicastCore

/// A non-blocking UDP socket. Owns its descriptor and closes it on deinit.
public final class UDPSocket {
    public let fd: Int32
    /// The bound address (with the kernel-chosen port when bound to port 0).
    public let localAddress: SocketAddress

    /// Opens a socket bound to `address`.
    public init(bindingTo address: SocketAddress) throws(PosixError) {
        let family = address.family == .ipv6 ? equicast_af_inet6() : equicast_af_inet()
        let fd = try retryingSyscall("socket") { socket(family, equicast_sock_dgram(), 0) }
        var ep = address.endpoint
        do {
            _ = try retryingSyscall("bind \(address)") { equicast_bind(fd, &ep) }
            var local = equicast_endpoint()
            _ = try retryingSyscall("getsockname") { equicast_local_endpoint(fd, &local) }
            self.localAddress = SocketAddress(endpoint: local)
        } catch {
            close(fd)
            throw error
        }
        self.fd = fd
    }

    deinit { close(fd) }

    /// Sends one datagram. Returns false when the socket buffer is full (EAGAIN): UDP may drop, and the
    /// protocol above already tolerates loss.
    @discardableResult
    public func send(_ bytes: [UInt8], to address: SocketAddress) throws(PosixError) -> Bool {
        var ep = address.endpoint
        while true {
            let n = bytes.withUnsafeBytes { equicast_sendto(fd, $0.baseAddress, $0.count, &ep) }
            if n >= 0 { return true }
            let code = equicast_errno()
            if code == EINTR { continue }
            if equicast_errno_is_would_block(code) != 0 { return false }
            throw .syscall(name: "sendto \(address)", errno: code)
        }
    }

    /// A received datagram; `truncated` when it was longer than the receive buffer (its tail is lost).
    public struct Datagram {
        public let bytes: [UInt8]
        public let from: SocketAddress
        public let truncated: Bool
    }

    /// Receives one datagram of at most `capacity` bytes, or nil when none is waiting.
    public func receive(capacity: Int = 65536) throws(PosixError) -> Datagram? {
        var buffer = [UInt8](repeating: 0, count: capacity)
        var from = equicast_endpoint()
        var truncated: Int32 = 0
        while true {
            let n = buffer.withUnsafeMutableBytes {
                equicast_recvfrom(fd, $0.baseAddress, $0.count, &from, &truncated)
            }
            if n >= 0 {
                buffer.removeSubrange(Int(n)...)
                return Datagram(bytes: buffer, from: SocketAddress(endpoint: from), truncated: truncated != 0)
            }
            let code = equicast_errno()
            if code == EINTR { continue }
            if equicast_errno_is_would_block(code) != 0 { return nil }
            throw .syscall(name: "recvfrom", errno: code)
        }
    }
}
