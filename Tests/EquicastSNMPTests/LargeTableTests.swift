import EquicastCore
import Foundation
import Testing

@testable import EquicastSNMP

/// The subagent in this test process against a private snmpd: a member table of 3,000 rows walked with snmpwalk
/// (GETNEXT across every row and column) and snmpbulkwalk (GETBULK), while the test pumps the subagent's loop.
@Suite(.serialized) struct LargeTableTests {
    static var toolsPresent: Bool {
        ["/usr/sbin/snmpd", "/usr/bin/snmpwalk", "/usr/bin/snmpbulkwalk"].allSatisfy {
            FileManager.default.isExecutableFile(atPath: $0)
        }
    }

    @Test(.enabled(if: toolsPresent, "needs snmpd and the snmp tools"))
    func threeThousandMembersWalkInOrder() throws {
        let dir = NSTemporaryDirectory() + "equicast-snmp-large-\(UUID().uuidString.prefix(8))"
        try FileManager.default.createDirectory(atPath: dir + "/persist", withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let port = 30000 + Int(getpid() % 2000)
        let config = """
            master agentx
            agentXSocket \(dir)/agentx.sock
            agentaddress udp:127.0.0.1:\(port)
            rocommunity public 127.0.0.1

            """
        try Data(config.utf8).write(to: URL(fileURLWithPath: dir + "/snmpd.conf"))
        // Through /bin/sh: snmpd closes the descriptor Foundation's Process watches (see SNMPTests).
        let launcher = Process()
        launcher.executableURL = URL(fileURLWithPath: "/bin/sh")
        launcher.arguments = [
            "-c",
            "SNMP_PERSISTENT_DIR='\(dir)/persist' MIBS= exec /usr/sbin/snmpd -f -Lf '\(dir)/snmpd.log' -C -c "
                + "'\(dir)/snmpd.conf' -I -smux </dev/null >/dev/null 2>&1 & echo $!",
        ]
        let pidPipe = Pipe()
        launcher.standardOutput = pidPipe
        try launcher.run()
        let pidText = String(decoding: pidPipe.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        launcher.waitUntilExit()
        let snmpd = try #require(Int32(pidText.trimmingCharacters(in: .whitespacesAndNewlines)))
        defer { kill(snmpd, SIGKILL) }
        let deadline = Date().addingTimeInterval(10)
        while !FileManager.default.fileExists(atPath: dir + "/agentx.sock") && Date() < deadline {
            Thread.sleep(forTimeInterval: 0.05)
        }

        let agent = SubAgent(
            socketPath: dir + "/agentx.sock", persistentDirectory: dir, pingInterval: 1, adminStatus: .allow,
            applyAdminStatus: { _ in true }, log: { _, _ in })
        defer { agent.shutdown() }
        var snapshot = SNMPSnapshot()
        let count = 3_000
        for i in 0..<count {
            // Ids spread over the whole 64-bit range, added in id order as the daemon does.
            let id = NodeID(rawValue: UInt64(i + 1) &* 0x0005_5555_5555_5555)
            snapshot.members.append(
                SNMPMemberRow(
                    id: id, address: SocketAddress(ipv4: 10, 0, UInt8(i / 250), UInt8(i % 250 + 1), port: 7946),
                    state: i % 7 == 0 ? .failed : .alive, incarnation: UInt64(i % 5) << 32, firmwareVersion: 2,
                    updateState: .committed, lastHeardAge: 0))
        }
        agent.update(snapshot)
        #expect(agent.memberTable?.rowCount == count)

        for tool in ["snmpwalk", "snmpbulkwalk"] {
            let p = Process()
            p.executableURL = URL(fileURLWithPath: "/usr/bin/" + tool)
            p.arguments = [
                "-v2c", "-c", "public", "-On", "-t", "5", "-r", "0", "127.0.0.1:\(port)",
                ".1.3.6.1.4.1.8072.9999.7411.1.3.5.1.5",
            ]
            var environment = ProcessInfo.processInfo.environment
            environment["SNMP_PERSISTENT_DIR"] = dir + "/manager"
            environment["MIBS"] = ""
            p.environment = environment
            let output = dir + "/\(tool).out"
            _ = FileManager.default.createFile(atPath: output, contents: nil)
            p.standardOutput = try FileHandle(forWritingTo: URL(fileURLWithPath: output))
            p.standardError = p.standardOutput
            try p.run()
            // The subagent's loop, as the daemon runs it: poll net-snmp's descriptors, then process.
            let stop = Date().addingTimeInterval(120)
            while p.isRunning && Date() < stop {
                let (fds, timeout) = agent.descriptors()
                var set = fds.map { pollfd(fd: $0, events: Int16(POLLIN), revents: 0) }
                _ = poll(&set, nfds_t(set.count), Int32(min(timeout ?? 50, 50)))
                agent.process(readable: set.filter { $0.revents != 0 }.map { $0.fd })
            }
            p.waitUntilExit()
            let text = (try? String(contentsOfFile: output, encoding: .utf8)) ?? ""
            // Values only (net-snmp may also say that it created its persistent directory).
            let lines = text.split(separator: "\n").filter { $0.hasPrefix(".1.3.6.1.4.1.8072.9999.7411.1.3.5.1.5.") }
            #expect(lines.count == count, "\(tool): \(lines.count) lines; \(lines.suffix(3))")
            #expect(lines.filter { $0.hasSuffix("INTEGER: 3") }.count == (0..<count).filter { $0 % 7 == 0 }.count)
            #expect(!text.contains("OID not increasing") && p.terminationStatus == 0, "\(tool): \(text.suffix(300))")
        }
    }
}
