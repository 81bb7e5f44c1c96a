import EquicastCore
import EquicastPosix
import Glibc
import Testing

@Suite struct UDPSocketTests {
    let loopback = SocketAddress(ipv4: 127, 0, 0, 1, port: 0)

    @Test func sendsAndReceivesThroughPoll() throws {
        let a = try UDPSocket(bindingTo: loopback)
        let b = try UDPSocket(bindingTo: loopback)
        #expect(b.localAddress.port != 0)
        #expect(try b.receive() == nil)  // nothing waiting: nil, not an error and not a block
        try a.send([1, 2, 3], to: b.localAddress)
        var poller = Poller()
        poller.watch([(b.fd, .readable)])
        let ready = try poller.wait(timeoutMilliseconds: 2000)
        #expect(ready.count == 1 && ready[0].events.contains(.readable))
        let datagram = try #require(try b.receive())
        #expect(datagram.bytes == [1, 2, 3])
        #expect(datagram.from == a.localAddress)
        #expect(!datagram.truncated)
    }

    @Test func oversizedDatagramIsFlaggedTruncated() throws {
        let a = try UDPSocket(bindingTo: loopback)
        let b = try UDPSocket(bindingTo: loopback)
        try a.send([UInt8](repeating: 5, count: 3000), to: b.localAddress)
        var poller = Poller()
        poller.watch([(b.fd, .readable)])
        _ = try poller.wait(timeoutMilliseconds: 2000)
        let datagram = try #require(try b.receive(capacity: 1000))
        #expect(datagram.truncated)
        #expect(datagram.bytes.count == 1000)
    }

    @Test func pollTimesOutWithNothingReady() throws {
        let a = try UDPSocket(bindingTo: loopback)
        var poller = Poller()
        poller.watch([(a.fd, .readable)])
        let start = MonotonicClock.milliseconds()
        #expect(try poller.wait(timeoutMilliseconds: 50).isEmpty)
        #expect(MonotonicClock.milliseconds() - start >= 45)
    }

    @Test func bindingAPortInUseNamesTheCall() throws {
        let a = try UDPSocket(bindingTo: loopback)
        #expect(throws: PosixError.syscall(name: "bind \(a.localAddress)", errno: EADDRINUSE)) {
            try UDPSocket(bindingTo: a.localAddress)
        }
    }

    @Test(arguments: [
        ("127.0.0.1:7946", "127.0.0.1:7946"),
        ("0.0.0.0:0", "0.0.0.0:0"),
        ("[::1]:7946", "[0:0:0:0:0:0:0:1]:7946"),
        ("[2001:db8::42]:65535", "[2001:db8:0:0:0:0:0:42]:65535"),
    ])
    func parsesAddresses(text: String, expected: String) throws {
        #expect(try SocketAddress.parse(text).description == expected)
    }

    @Test(arguments: [
        "", "127.0.0.1", "127.0.0.1:", "127.0.0.1:65536", "localhost:80", "::1:80", "[::1]80",
        "1.2.3:4", "[::1]:-1", "300.1.1.1:5",
    ])
    func refusesBadAddresses(text: String) {
        #expect(throws: PosixError.invalidAddress(text)) { try SocketAddress.parse(text) }
    }
}
