import EquicastCore
import EquicastPosix
import Foundation
import Testing

/// Connections no stranger can exhaust, and local mistakes that lose nothing (issue 32, findings 2 and 7),
/// against real agent processes on loopback.
@Suite(.serialized) struct LocalSafetyTests {
    /// User and system CPU time a process has used, in seconds (from /proc).
    static func cpuSeconds(_ pid: Int32) -> Double? {
        guard let text = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
            let close = text.lastIndex(of: ")")
        else { return nil }
        let fields = text[text.index(after: close)...].split(separator: " ")
        // After the command: state is field 3, utime and stime are fields 14 and 15.
        guard fields.count > 13, let user = Double(fields[11]), let system = Double(fields[12]) else { return nil }
        return (user + system) / Double(sysconf(Int32(_SC_CLK_TCK)))
    }

    /// Finding 2: 70 connections dripping a plausible frame header one byte at a time, and 300 that never send
    /// anything, held every connection slot of an agent: the control socket hung, pushes, syncs and chunk
    /// fetches failed, and the accept loop spun a whole core. Now the agent answers its control socket and TCP
    /// requests throughout, a fresh peer can join through it, and it stays nearly idle.
    @Test func strangersCannotExhaustConnections() throws {
        let cluster = AgentCluster(name: "exhaust")
        try cluster.start(0)
        try cluster.start(1)
        try #require(cluster.waitFor(seconds: 10) { cluster.members(0)?.count == 2 } != nil)
        let target = SocketAddress(ipv4: 127, 0, 0, 1, port: UInt16(cluster.port(0)))
        // A plausible header: version 1, Lite, control, encrypted, then a key id and the rest.
        var header: [UInt8] = [1, 1, 0, 1, 0xe4, 0xb4, 0x42, 0x97] + [UInt8](repeating: 7, count: 40) + [0, 0, 1, 0]
        header = Array(header.prefix(Frame.headerByteCount))
        var drippers: [StreamSocket] = []
        var silent: [StreamSocket] = []
        for _ in 0..<70 { drippers.append(try StreamSocket.connect(to: target)) }
        for _ in 0..<300 { silent.append(try StreamSocket.connect(to: target)) }
        let pid = try #require(cluster.processes[0]?.processIdentifier)
        let cpuBefore = try #require(LocalSafetyTests.cpuSeconds(pid))
        let start = Date()
        var sent = 0
        var statusTimes: [Double] = []
        var tcpAnswers = 0
        var joined = false
        var started2 = false
        while Date().timeIntervalSince(start) < 8 {
            // One more header byte on every dripping connection, twice a second, as the attack did.
            for s in drippers { _ = try? s.write([header[sent % header.count]], from: 0) }
            sent += 1
            let asked = Date()
            if cluster.status(0) != nil { statusTimes.append(Date().timeIntervalSince(asked)) }
            let (code, _) = try RolloutTests.run(["rollout", "status"] + RolloutTests.agentFlags(cluster, 0))
            if code == 0 { tcpAnswers += 1 }
            if !started2 && Date().timeIntervalSince(start) > 3 {
                try cluster.start(2)
                started2 = true
            }
            if started2 && cluster.members(2)?.count == 3 { joined = true }
            Thread.sleep(forTimeInterval: 0.5)
        }
        let cpu = try #require(LocalSafetyTests.cpuSeconds(pid)) - cpuBefore
        let elapsed = Date().timeIntervalSince(start)
        withExtendedLifetime((drippers, silent)) {}
        #expect(statusTimes.count >= 12, "the control socket answered \(statusTimes.count) times in \(elapsed) s")
        #expect((statusTimes.max() ?? 99) < 1, "slowest control answer \(statusTimes.max() ?? 0) s")
        #expect(tcpAnswers >= 12, "`rollout status` over TCP answered \(tcpAnswers) times")
        #expect(joined, "node 2 could not join through node 0 during the attack")
        // The CLI runs above cost the agent a little; a spinning accept loop costs a whole core.
        #expect(cpu < 0.25 * elapsed, "the agent used \(cpu) s of CPU in \(elapsed) s")
        let evicted = Int(cluster.status(0)?["connections_evicted"] ?? "") ?? 0
        #expect(evicted > 0, "no connection was evicted")
        print(
            "attack: \(statusTimes.count) control answers (slowest \(statusTimes.max() ?? 0) s), "
                + "\(tcpAnswers) TCP answers, \(cpu) s CPU in \(elapsed) s, \(evicted) evicted")
    }

    /// Finding 7: a ControlSocket naming an existing file deleted it. Now the agent refuses to start, says why,
    /// and leaves the file as it was.
    @Test func aControlSocketPathThatIsAFileIsLeftAlone() throws {
        let cluster = AgentCluster(name: "ctlfile")
        let precious = cluster.directory + "/precious.txt"
        try Data("keep me\n".utf8).write(to: URL(fileURLWithPath: precious))
        try cluster.start(0, extra: ["--ControlSocket", precious])
        let exited = cluster.waitFor(seconds: 10) { !cluster.isRunning(0) }
        #expect(exited != nil, "the agent started on a ControlSocket that is a regular file")
        #expect(cluster.processes[0]?.terminationStatus != 0)
        #expect(try String(contentsOfFile: precious, encoding: .utf8) == "keep me\n")
        let log = try String(contentsOfFile: cluster.directory + "/n0.log", encoding: .utf8)
        #expect(log.contains("\(precious) exists and is not a socket"), "\(log)")
    }

    /// Finding 7: a second agent on the same StateDirectory started with the same node id and took over the
    /// control socket. Now it refuses, naming the first one's pid, and the first keeps its socket.
    @Test func aSecondAgentOnOneStateDirectoryRefusesToStart() throws {
        let cluster = AgentCluster(name: "twice")
        try cluster.start(0)
        try #require(cluster.waitFor(seconds: 10) { cluster.status(0) != nil } != nil)
        let firstPID = try #require(cluster.processes[0]?.processIdentifier)
        let id = cluster.nodeID(0)
        // Same state directory (n0), another port.
        let p = Process()
        p.executableURL = URL(fileURLWithPath: AgentCluster.daemonPath)
        p.arguments = [
            "run", "--BindAddress", "127.0.0.1:\(cluster.port(5))", "--StateDirectory", cluster.directory + "/n0",
            "--FleetKeyFile", cluster.directory + "/fleet.key",
        ]
        let pipe = Pipe()
        p.standardError = pipe
        p.standardOutput = pipe
        try p.run()
        let output = String(decoding: pipe.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        p.waitUntilExit()
        #expect(p.terminationStatus != 0)
        #expect(output.contains("in use by another equicastd (pid \(firstPID))"), "\(output)")
        #expect(cluster.nodeID(0) == id, "the first agent's control socket was taken")
        #expect(cluster.isRunning(0))
    }
}
