import Foundation

/// A network namespace created for one test and deleted with it. Agents run inside through `launcher`; their
/// control sockets are files, so the test reaches them from outside. Needs root.
final class NetworkNamespace {
    let name: String

    init(_ prefix: String) throws {
        name = "\(prefix)\(getpid() % 100_000)"
        try? NetworkNamespace.run("/usr/sbin/ip", "netns", "del", name)  // left over from a killed run
        try NetworkNamespace.run("/usr/sbin/ip", "netns", "add", name)
        try ip("link", "set", "lo", "up")
    }

    deinit { try? NetworkNamespace.run("/usr/sbin/ip", "netns", "del", name) }

    /// The command prefix that runs a program inside the namespace.
    var launcher: [String] { ["/usr/sbin/ip", "netns", "exec", name] }

    func ip(_ args: String...) throws { try NetworkNamespace.run(["/usr/sbin/ip", "-n", name] + args) }

    /// Limits everything sent on the namespace's loopback to `megabits` per second (a token bucket filter), so
    /// that transfers between agents inside take seconds instead of milliseconds.
    /// The MTU comes down from 64 KiB to Ethernet's 1,500 bytes first: a token bucket smaller than one packet
    /// would hold that packet back for ever.
    func limitLoopback(megabits: Int) throws {
        try ip("link", "set", "lo", "mtu", "1500")
        try NetworkNamespace.run(
            "/usr/sbin/ip", "netns", "exec", name, "/usr/sbin/tc", "qdisc", "add", "dev", "lo", "root", "tbf", "rate",
            "\(megabits)mbit", "burst", "32kb", "latency", "200ms")
    }

    static func run(_ args: String...) throws { try run(args) }

    static func run(_ args: [String]) throws {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: args[0])
        p.arguments = Array(args.dropFirst())
        let pipe = Pipe()
        p.standardError = pipe
        try p.run()
        let err = pipe.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        guard p.terminationStatus == 0 else {
            let message = "\(args.joined(separator: " ")) failed: \(String(decoding: err, as: UTF8.self))"
            throw CocoaError(.executableLoad, userInfo: [NSLocalizedDescriptionKey: message])
        }
    }
}
