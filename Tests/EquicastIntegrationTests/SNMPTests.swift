import EquicastCore
import EquicastCrypto
import Foundation
import Testing

/// A private snmpd (AgentX master) and snmptrapd for one test: their own configs in the cluster's directory,
/// loopback ports from the cluster's block, nothing read from or written to /etc/snmp or /var/lib/snmp.
final class SNMPMaster {
    static let snmpd = "/usr/sbin/snmpd"
    static let snmptrapd = "/usr/sbin/snmptrapd"
    static var available: Bool {
        [snmpd, snmptrapd, "/usr/bin/snmpget", "/usr/bin/snmpset", "/usr/bin/snmpwalk", "/usr/bin/snmptable"].allSatisfy
        {
            FileManager.default.isExecutableFile(atPath: $0)
        }
    }
    /// The IETF base modules (not in Debian's main archive) and the project's MIB.
    static var mibPath: String {
        let repo = AgentCluster.repository.path
        return repo + "/mibs:" + AgentCluster.repository.deletingLastPathComponent().path + "/shared/mibs/ietf"
    }

    let directory: String
    let port: Int
    let trapPort: Int
    var agentXSocket: String { directory + "/agentx.sock" }
    var trapLog: String { directory + "/traps.log" }
    private var master: Int32?
    private var trapReceiver: Int32?

    /// The SNMPv3 user allowed to write the admin status, and its passphrases.
    static let operatorUser = "operator"
    static let authPass = "operator-auth-pass"
    static let privPass = "operator-priv-pass"

    init(in directory: String, port: Int, trapPort: Int) throws {
        self.directory = directory + "/snmp-master"
        self.port = port
        self.trapPort = trapPort
        try FileManager.default.createDirectory(atPath: self.directory + "/persist", withIntermediateDirectories: true)
        // The access lines are the ones docs/snmp.md gives: the community reads, only the authPriv user writes,
        // and it writes nothing but the admin status.
        let config = """
            master agentx
            agentXSocket \(agentXSocket)
            agentXPerms 0660 0770
            agentaddress udp:127.0.0.1:\(port)
            trap2sink 127.0.0.1:\(trapPort) public
            view   equicastAll   included .1.3.6.1.4.1.8072.9999.7411
            view   equicastAdmin included .1.3.6.1.4.1.8072.9999.7411.1.4.5
            com2sec readonly 127.0.0.1 public
            group  monitoring v2c readonly
            access monitoring "" any noauth exact equicastAll none none
            createUser \(SNMPMaster.operatorUser) SHA "\(SNMPMaster.authPass)" AES "\(SNMPMaster.privPass)"
            group  operators usm \(SNMPMaster.operatorUser)
            access operators "" usm priv exact equicastAll equicastAdmin none

            """
        try Data(config.utf8).write(to: URL(fileURLWithPath: self.directory + "/snmpd.conf"))
        let trapConfig = "disableAuthorization yes\n"
        try Data(trapConfig.utf8).write(to: URL(fileURLWithPath: self.directory + "/snmptrapd.conf"))
    }

    deinit {
        stop()
        if let t = trapReceiver { SNMPMaster.end(t) }
    }

    /// Starts a server in the background through /bin/sh and returns its pid. snmpd and snmptrapd close every
    /// descriptor they inherit, including the one Foundation's Process watches to learn that a child ended, after
    /// which Process blocks in waitpid for them; so they are not Foundation children.
    static func spawn(_ command: [String], environment: [String: String]) throws -> Int32 {
        let quoted = command.map { "'" + $0.replacingOccurrences(of: "'", with: "'\\''") + "'" }.joined(separator: " ")
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/bin/sh")
        p.arguments = ["-c", "exec " + quoted + " </dev/null >/dev/null 2>&1 & echo $!"]
        p.environment = environment
        let pipe = Pipe()
        p.standardOutput = pipe
        try p.run()
        let out = pipe.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        guard let pid = Int32(String(decoding: out, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines))
        else { throw CocoaError(.executableLoad) }
        return pid
    }

    /// SIGKILL, then waits (up to 5 s) until the process is gone.
    static func end(_ pid: Int32) {
        kill(pid, SIGKILL)
        let deadline = Date().addingTimeInterval(5)
        while kill(pid, 0) == 0 && Date() < deadline { Thread.sleep(forTimeInterval: 0.02) }
    }

    private func environment() -> [String: String] {
        var e = ProcessInfo.processInfo.environment
        e["SNMP_PERSISTENT_DIR"] = directory + "/persist"
        e["SNMPCONFPATH"] = directory
        e["MIBS"] = ""
        return e
    }

    /// Starts snmpd; returns once its AgentX socket exists.
    func start() throws {
        // -I -smux: no SMUX listener (port 199 may be taken by the machine's own snmpd).
        master = try SNMPMaster.spawn(
            [
                SNMPMaster.snmpd, "-f", "-Lf", directory + "/snmpd.log", "-C", "-c", directory + "/snmpd.conf", "-I",
                "-smux",
            ], environment: environment())
        let deadline = Date().addingTimeInterval(10)
        while !FileManager.default.fileExists(atPath: agentXSocket) && Date() < deadline {
            Thread.sleep(forTimeInterval: 0.05)
        }
    }

    func stop() {
        guard let pid = master else { return }
        SNMPMaster.end(pid)
        master = nil
        try? FileManager.default.removeItem(atPath: agentXSocket)
    }

    /// Starts snmptrapd, logging every notification it receives (with names from the MIB) to `trapLog`.
    func startTrapReceiver() throws {
        trapReceiver = try SNMPMaster.spawn(
            [
                SNMPMaster.snmptrapd, "-f", "-Lf", trapLog, "-C", "-c", directory + "/snmptrapd.conf", "-M",
                SNMPMaster.mibPath, "-m", "EQUICAST-LITE-MIB", "udp:127.0.0.1:\(trapPort)",
            ], environment: environment())
        Thread.sleep(forTimeInterval: 0.3)
    }

    var traps: String { (try? String(contentsOfFile: trapLog, encoding: .utf8)) ?? "" }

    /// Runs an SNMP manager command with the MIB loaded; returns its status and output (stdout and stderr).
    func manager(_ tool: String, _ arguments: [String], community: Bool = true) -> (Int32, String) {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/" + tool)
        let access = community ? ["-v2c", "-c", "public"] : []
        p.arguments =
            access + ["-M", SNMPMaster.mibPath, "-m", "EQUICAST-LITE-MIB", "-t", "2", "-r", "1"]
            + arguments
        var e = environment()
        e["SNMP_PERSISTENT_DIR"] = directory + "/manager"
        p.environment = e
        let pipe = Pipe()
        p.standardOutput = pipe
        p.standardError = pipe
        do { try p.run() } catch { return (-1, "\(error)") }
        let out = pipe.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        return (p.terminationStatus, String(decoding: out, as: UTF8.self))
    }

    var target: String { "127.0.0.1:\(port)" }

    /// SNMPv3 authPriv as the operator user.
    var operatorAccess: [String] {
        [
            "-v3", "-l", "authPriv", "-u", SNMPMaster.operatorUser, "-a", "SHA", "-A", SNMPMaster.authPass, "-x", "AES",
            "-X", SNMPMaster.privPass,
        ]
    }

    /// A node id as the sub-identifiers of a table index (fixed-length string: one per octet, no length).
    static func index(ofNode hex: String) -> String {
        var parts: [String] = []
        var chars = Array(hex)
        while chars.count >= 2 {
            parts.append(String(UInt8(String(chars[0..<2]), radix: 16) ?? 0))
            chars.removeFirst(2)
        }
        return parts.joined(separator: ".")
    }
}

/// equicastd as an AgentX subagent of a real snmpd, read and written with real SNMP managers.
@Suite(.serialized) struct SNMPTests {
    func snmpFlags(_ master: SNMPMaster) -> [String] {
        ["--SNMPAgentX", "on", "--SNMPAgentXSocket", master.agentXSocket, "--SNMPPingInterval", "1"]
    }

    /// Three agents, node 0 a subagent: its scalars and member table by name with snmpget, snmpwalk and
    /// snmptable; node 2 killed with SIGKILL turns failed in the table and a member-failed notification reaches
    /// snmptrapd; snmpd restarted, the subagent registers again and walks work.
    @Test(.enabled(if: SNMPMaster.available, "needs snmpd, snmptrapd and the snmp tools"))
    func memberTableNotificationsAndMasterRestart() throws {
        let cluster = AgentCluster(name: "snmp")
        let master = try SNMPMaster(in: cluster.directory, port: cluster.port(18), trapPort: cluster.port(19))
        try master.startTrapReceiver()
        try master.start()
        try cluster.start(0, extra: snmpFlags(master) + ["--NodeName", "gateway-0"])
        for i in 1..<3 { try cluster.start(i) }
        #expect(cluster.waitFor(seconds: 15) { (0..<3).allSatisfy { cluster.members($0)?.count == 3 } } != nil)
        let ids = try (0..<3).map { try #require(cluster.nodeID($0)) }

        var out = ""
        let answered = cluster.waitFor(seconds: 10) {
            out =
                master.manager(
                    "snmpget",
                    [master.target, "EQUICAST-LITE-MIB::equicastNodeName.0", "EQUICAST-LITE-MIB::equicastNodeId.0"]
                ).1
            return out.contains("equicastNodeName.0 = STRING: gateway-0")
        }
        try #require(answered != nil, "no answer by name: \(out)")
        #expect(out.contains("equicastNodeId.0 = STRING: \(ids[0])"), "\(out)")
        let alive = cluster.waitFor(seconds: 5) {
            master.manager("snmpget", [master.target, "EQUICAST-LITE-MIB::equicastMembersAlive.0"]).1.contains(
                "Gauge32: 3 members")
        }
        #expect(alive != nil)

        // The member table lists every member, alive, by GETNEXT across rows (snmpwalk) and by snmptable.
        let walk = master.manager("snmpwalk", ["-Ob", master.target, "EQUICAST-LITE-MIB::equicastMemberState"]).1
        for id in ids {
            #expect(walk.contains("equicastMemberState.\(SNMPMaster.index(ofNode: id)) = INTEGER: alive(1)"), "\(walk)")
        }
        #expect(walk.split(separator: "\n").count == 3, "\(walk)")
        let table = master.manager(
            "snmptable", ["-Cb", "-Ci", "-Ob", master.target, "EQUICAST-LITE-MIB::equicastMemberTable"]
        ).1
        #expect(table.split(separator: "\n").filter { $0.contains(" alive ") }.count == 3, "\(table)")
        #expect(table.contains("\(cluster.port(1))") && table.contains("\(cluster.port(2))"), "\(table)")

        // kill -9 node 2: its row turns failed and the notification arrives.
        cluster.kill9(2)
        let row = "EQUICAST-LITE-MIB::equicastMemberState.\(SNMPMaster.index(ofNode: ids[2]))"
        var state = ""
        let failed = cluster.waitFor(seconds: 20) {
            state = master.manager("snmpget", ["-Ob", master.target, row]).1
            return state.contains("INTEGER: failed(3)")
        }
        #expect(failed != nil, "node 2's row: \(state)")
        let trapped = cluster.waitFor(seconds: 5) {
            master.traps.contains("equicastMemberFailed") && master.traps.contains(ids[2])
        }
        #expect(trapped != nil, "snmptrapd received: \(master.traps)")

        // snmpd restarts: the subagent notices, registers again, and walks work again.
        master.stop()
        Thread.sleep(forTimeInterval: 1.5)
        try master.start()
        var again = ""
        let back = cluster.waitFor(seconds: 40) {
            again = master.manager("snmpwalk", [master.target, "EQUICAST-LITE-MIB::equicastNode"]).1
            return again.contains("equicastNodeName.0 = STRING: gateway-0")
        }
        #expect(back != nil, "after the restart: \(again)")
        let log = ReleaseFaultTests.log(cluster, 0)
        #expect(log.contains("is unreachable; reconnecting"), "\(log)")
        #expect(log.components(separatedBy: "is unreachable").count == 2, "the outage was logged more than once")
    }

    /// The admin status: a SET through the read-only community is refused; an SNMPv3 authPriv SET to defer
    /// keeps node 1 from installing a release the others install (it stays staged, verified); a SET back to allow
    /// installs it, and the firmware-installed notification reaches snmptrapd. The value survives a restart.
    @Test(.enabled(if: SNMPMaster.available, "needs snmpd, snmptrapd and the snmp tools"))
    func adminStatusDefersInstallsOnThisNodeOnly() throws {
        let cluster = AgentCluster(name: "snmpset")
        let master = try SNMPMaster(in: cluster.directory, port: cluster.port(18), trapPort: cluster.port(19))
        try master.startTrapReceiver()
        try master.start()
        let image = RolloutTests.randomImage(size: 1 << 20, seed: 41)
        let file = try RolloutTests.makeRelease(in: cluster, image: image, version: 2)
        for i in 0..<3 {
            try cluster.start(i, extra: RolloutTests.releaseFlags(cluster, i) + (i == 1 ? snmpFlags(master) : []))
        }
        #expect(cluster.waitFor(seconds: 15) { (0..<3).allSatisfy { cluster.members($0)?.count == 3 } } != nil)
        let admin = "EQUICAST-LITE-MIB::equicastUpdateAdminStatus.0"
        let ready = cluster.waitFor(seconds: 10) {
            master.manager("snmpget", [master.target, admin]).1.contains("INTEGER: allow(1)")
        }
        try #require(ready != nil, "the subagent did not answer")

        let (roStatus, roOut) = master.manager("snmpset", [master.target, admin, "i", "2"])
        #expect(roStatus != 0, "the read-only community wrote: \(roOut)")
        #expect(
            roOut.contains("noAccess") || roOut.contains("notWritable") || roOut.contains("authorizationError"),
            "\(roOut)")
        #expect(cluster.status(1)?["update_admin_status"] == "allow")

        let (setStatus, setOut) = master.manager(
            "snmpset", master.operatorAccess + [master.target, admin, "i", "2"], community: false)
        try #require(setStatus == 0, "authPriv SET failed: \(setOut)")
        #expect(setOut.contains("defer(2)"), "\(setOut)")
        #expect(cluster.status(1)?["update_admin_status"] == "defer")
        // A value outside the enumeration is refused in RESERVE1 and changes nothing.
        let (badStatus, badOut) = master.manager(
            "snmpset", master.operatorAccess + [master.target, admin, "i", "7"], community: false)
        #expect(badStatus != 0 && badOut.contains("wrongValue"), "\(badOut)")

        let (pushStatus, pushOut) = try RolloutTests.run(
            ["rollout", "push", file] + RolloutTests.agentFlags(cluster, 0))
        try #require(pushStatus == 0, "\(pushOut)")
        let othersDone = cluster.waitFor(seconds: 60) {
            cluster.status(0)?["update_state"] == "committed" && cluster.status(2)?["update_state"] == "committed"
                && cluster.status(1)?["update_state"] == "staged"
        }
        try #require(othersDone != nil, "states: \((0..<3).map { cluster.status($0)?["update_state"] })")
        Thread.sleep(forTimeInterval: 1)
        #expect(cluster.status(1)?["update_state"] == "staged")
        #expect(cluster.status(1)?["firmware_version"] == "1")
        #expect(!FileManager.default.fileExists(atPath: cluster.directory + "/n1/installed.img"), "node 1 installed")
        #expect(
            master.manager("snmpget", [master.target, "EQUICAST-LITE-MIB::equicastUpdateState.0"]).1.contains(
                "staged(5)"))

        // The deferral is persisted: a restart keeps it.
        cluster.terminate(1)
        try cluster.start(1, extra: RolloutTests.releaseFlags(cluster, 1) + snmpFlags(master))
        let restarted = cluster.waitFor(seconds: 15) { cluster.status(1)?["update_state"] == "staged" }
        #expect(restarted != nil)
        #expect(cluster.status(1)?["update_admin_status"] == "defer")

        let allowed = cluster.waitFor(seconds: 15) {
            master.manager("snmpset", master.operatorAccess + [master.target, admin, "i", "1"], community: false).0 == 0
        }
        try #require(allowed != nil)
        let installed = cluster.waitFor(seconds: 30) { cluster.status(1)?["update_state"] == "committed" }
        #expect(installed != nil, "node 1 after allow: \(ReleaseFaultTests.log(cluster, 1))")
        #expect(ReleaseFaultTests.installedHash(cluster, 1) == Digest256(hashing: image))
        let trapped = cluster.waitFor(seconds: 5) { master.traps.contains("equicastFirmwareInstalled") }
        #expect(trapped != nil, "snmptrapd received: \(master.traps)")
    }
}
