import EquicastCore
import EquicastPosix
import Foundation

/// Real `equicastd` processes on loopback, each with its own state directory, started and stopped by the test.
final class AgentCluster {
    static let repository = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent()
    static var daemonPath: String { repository.appendingPathComponent(".build/debug/equicastd").path }

    let directory: String
    let basePort: Int
    var processes: [Int: Process] = [:]
    let fastTimers: [String]

    private static let blockLock = NSLock()
    nonisolated(unsafe) private static var nextBlock = 0

    private static func takeBlock() -> Int {
        blockLock.lock()
        defer { blockLock.unlock() }
        nextBlock = (nextBlock + 1) % 20
        return nextBlock
    }

    init(name: String) {
        directory = NSTemporaryDirectory() + "equicast-\(name)-\(UUID().uuidString.prefix(8))"
        try! FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        // Suites run in parallel: each cluster takes its own block of 20 ports from a per-process range, all
        // below Linux's ephemeral range (32768 up) so outgoing connections cannot hold them.
        basePort = 10000 + Int(getpid() % 50) * 400 + AgentCluster.takeBlock() * 20
        // Shorter than the defaults so the tests run in seconds; the ratios between them are the defaults'.
        fastTimers = [
            "--GossipInterval", "100", "--ProbeInterval", "500", "--ProbeTimeout", "200", "--HeartbeatTimeout",
            "2500", "--SyncInterval", "1000",
        ]
        try! writeKey("fleet.key")  // a fresh temp directory: failing here means the machine is broken
    }

    deinit {
        for p in processes.values where p.isRunning { kill(p.processIdentifier, SIGKILL) }
        try? FileManager.default.removeItem(atPath: directory)
    }

    func writeKey(_ name: String) throws {
        var bytes = [UInt8](repeating: 0, count: 32)
        for i in bytes.indices { bytes[i] = UInt8.random(in: 0...255) }
        let hex = bytes.map { String(format: "%02x", $0) }.joined()
        let path = directory + "/" + name
        guard
            FileManager.default.createFile(
                atPath: path, contents: Data(hex.utf8), attributes: [.posixPermissions: 0o600])
        else { throw CocoaError(.fileWriteUnknown, userInfo: [NSFilePathErrorKey: path]) }
    }

    func port(_ i: Int) -> Int { basePort + i }
    func socket(_ i: Int) -> String { directory + "/n\(i)/control.sock" }

    /// Starts node i, bound to 127.0.0.1 and joining through node 0 unless told otherwise. `launcher` runs the
    /// agent through another command (`ip netns exec NAME`).
    func start(
        _ i: Int, key: String = "fleet.key", bind: String? = nil, seeds: [String]? = nil, launcher: [String] = [],
        extra: [String] = [], environment: [String: String] = [:]
    ) throws {
        let state = directory + "/n\(i)"
        try FileManager.default.createDirectory(atPath: state, withIntermediateDirectories: true)
        let p = Process()
        var args = [
            "run", "--BindAddress", bind ?? "127.0.0.1:\(port(i))", "--StateDirectory", state, "--FleetKeyFile",
            directory + "/" + key, "--LogLevel", "info",
        ]
        let seedList = seeds ?? (i == 0 ? [] : ["127.0.0.1:\(port(0))"])
        if !seedList.isEmpty { args += ["--Seeds", seedList.joined(separator: ",")] }
        args += extra
        if let command = launcher.first {
            p.executableURL = URL(fileURLWithPath: command)
            p.arguments = Array(launcher.dropFirst()) + [AgentCluster.daemonPath] + args + fastTimers
        } else {
            p.executableURL = URL(fileURLWithPath: AgentCluster.daemonPath)
            p.arguments = args + fastTimers
        }
        if !FileManager.default.fileExists(atPath: state + ".log") {
            guard FileManager.default.createFile(atPath: state + ".log", contents: nil) else {
                throw CocoaError(.fileWriteUnknown, userInfo: [NSFilePathErrorKey: state + ".log"])
            }
        }
        if !environment.isEmpty { p.environment = ProcessInfo.processInfo.environment.merging(environment) { $1 } }
        let log = try FileHandle(forWritingTo: URL(fileURLWithPath: state + ".log"))
        p.standardError = log
        p.standardOutput = log
        try p.run()
        processes[i] = p
    }

    func kill9(_ i: Int) {
        guard let p = processes[i] else { return }
        kill(p.processIdentifier, SIGKILL)
        p.waitUntilExit()
    }

    func terminate(_ i: Int) {
        guard let p = processes[i] else { return }
        kill(p.processIdentifier, SIGTERM)
        p.waitUntilExit()
    }

    func isRunning(_ i: Int) -> Bool { processes[i]?.isRunning ?? false }

    /// One request to node i's control socket; nil when it does not answer.
    func request(_ i: Int, _ line: String) -> String? {
        try? ControlClient.request(line, socket: socket(i))
    }

    /// Node i's member table: id -> state.
    func members(_ i: Int) -> [String: String]? {
        guard let text = request(i, "members") else { return nil }
        var out: [String: String] = [:]
        for line in text.split(separator: "\n").dropFirst() {
            let cols = line.split(separator: "\t").map(String.init)
            if cols.count >= 3 { out[cols[0]] = cols[2] }
        }
        return out
    }

    func status(_ i: Int) -> [String: String]? {
        guard let text = request(i, "status") else { return nil }
        var out: [String: String] = [:]
        for line in text.split(separator: "\n") {
            let cols = line.split(separator: "\t").map(String.init)
            if cols.count == 2 { out[cols[0]] = cols[1] }
        }
        return out
    }

    func nodeID(_ i: Int) -> String? { status(i)?["node"] }

    /// Polls `condition` every 100 ms until it holds or `seconds` pass; returns the seconds it took.
    func waitFor(seconds: Double, _ condition: () -> Bool) -> Double? {
        let start = Date()
        while Date().timeIntervalSince(start) < seconds {
            if condition() { return Date().timeIntervalSince(start) }
            Thread.sleep(forTimeInterval: 0.1)
        }
        return condition() ? Date().timeIntervalSince(start) : nil
    }
}
