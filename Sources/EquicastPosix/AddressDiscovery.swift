import CEquicastShims
import EquicastCore

/// Finds the address a node should announce when it is bound to a wildcard address: the source address the
/// kernel would use towards a seed, or else the first address of an interface that is up.
public enum AddressDiscovery {
    /// The local address the routing table picks for traffic to `destination` (a UDP connect sends nothing).
    public static func sourceAddress(towards destination: SocketAddress) throws(PosixError) -> SocketAddress {
        let family = destination.family == .ipv6 ? equicast_af_inet6() : equicast_af_inet()
        let fd = try retryingSyscall("socket") { socket(family, equicast_sock_dgram(), 0) }
        defer { close(fd) }
        var remote = destination.endpoint
        _ = try retryingSyscall("connect \(destination)") { equicast_connect(fd, &remote) }
        var local = equicast_endpoint()
        _ = try retryingSyscall("getsockname") { equicast_local_endpoint(fd, &local) }
        return SocketAddress(endpoint: local).with(port: 0)
    }

    /// The first address of `family` on an interface that is up, not loopback and not link-local, with the
    /// interface's name; nil when there is none.
    public static func interfaceAddress(_ family: SocketAddress.Family) -> (address: SocketAddress, interface: String)?
    {
        var ep = equicast_endpoint()
        var name = [CChar](repeating: 0, count: 64)
        let rc = name.withUnsafeMutableBufferPointer {
            equicast_interface_address(
                family == .ipv6 ? equicast_af_inet6() : equicast_af_inet(), &ep, $0.baseAddress, $0.count)
        }
        guard rc == 0 else { return nil }
        let nameBytes = name.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }
        return (SocketAddress(endpoint: ep), String(decoding: nameBytes, as: UTF8.self))
    }
}
