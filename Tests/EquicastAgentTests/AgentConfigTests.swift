import EquicastAgent
import EquicastCore
import Foundation
import Testing

@Suite struct AgentConfigTests {
    func parse(_ text: String) throws(ConfigError) -> AgentConfig {
        var c = AgentConfig()
        try c.apply(fileText: text, source: "test.conf")
        return c
    }

    @Test func fileSetsEveryKindOfValue() throws {
        let c = try parse(
            """
            # a comment line
            BindAddress = 127.0.0.1:7001   # trailing comment
            seeds = 127.0.0.1:7002, [::1]:7003
            StateDirectory = ./state
            EncryptionEnabled = off
            RingSize = 6
            GossipInterval = 150
            HeartbeatTimeout = 8000
            LogLevel = debug
            NodeName = gateway-3
            """)
        #expect(c.bindAddress == (try SocketAddress.parse("127.0.0.1:7001")))
        #expect(c.seeds == [try SocketAddress.parse("127.0.0.1:7002"), try SocketAddress.parse("[::1]:7003")])
        #expect(c.stateDirectory == "./state")
        #expect(c.encryptionEnabled == false)
        #expect(c.membership.ringSize == 6)
        #expect(c.membership.gossipInterval == 150)
        #expect(c.membership.heartbeatTimeout == 8000)
        #expect(c.logLevel == .debug)
        #expect(c.nodeName == "gateway-3")
        #expect(c.effectiveControlSocket == "./state/control.sock")
    }

    /// Each mistake is refused with the file, the line and the key it was on.
    @Test(arguments: [
        ("RingSize = 4\nRingSizes = 5", "test.conf:2: unknown setting 'RingSizes'"),
        ("\n\nGossipInterval = fast", "test.conf:3: GossipInterval = fast: expected a whole number of milliseconds"),
        ("GossipInterval = 0", "test.conf:1: GossipInterval = 0: expected a whole number of milliseconds"),
        ("Fanout = -1", "test.conf:1: Fanout = -1: expected a whole number"),
        ("EncryptionEnabled = maybe", "test.conf:1: EncryptionEnabled = maybe: expected true or false"),
        ("LogLevel = loud", "test.conf:1: LogLevel = loud: expected error, warning, info or debug"),
        ("RingSize 4", "test.conf:1: expected 'Key = value', found 'RingSize 4'"),
        ("= 4", "test.conf:1: expected 'Key = value', found '= 4'"),
        ("StateDirectory = var/lib", "test.conf:1: StateDirectory = var/lib: expected a path"),
    ])
    func badLinesAreRefusedByLine(text: String, message: String) {
        #expect {
            _ = try parse(text)
        } throws: { error in
            (error as? ConfigError)?.description == message
        }
    }

    @Test func badAddressNamesTheLine() {
        do {
            _ = try parse("Seeds = 127.0.0.1:7002,10.0.0.300:1")
            Issue.record("a bad seed address was accepted")
        } catch {
            #expect(error.description.hasPrefix("test.conf:1: Seeds = 127.0.0.1:7002,10.0.0.300:1: "))
        }
    }

    @Test func snmpSettings() throws {
        let c = try parse("SNMPAgentX = on\nSNMPAgentXSocket = tcp:127.0.0.1:705\nSNMPPingInterval = 2\n")
        #expect(c.snmpAgentX && c.snmpAgentXSocket == "tcp:127.0.0.1:705" && c.snmpPingInterval == 2)
        for (text, reason) in [
            ("SNMPAgentX = maybe", "expected on or off"), ("SNMPPingInterval = 0", "expected 1 ... 3600 seconds"),
            ("SNMPAgentXSocket = ", "expected a socket path or tcp:HOST:PORT"),
        ] {
            do {
                _ = try parse(text)
                Issue.record("'\(text)' was accepted")
            } catch {
                #expect(error.description.hasPrefix("test.conf:1: ") && error.description.hasSuffix(reason), "\(error)")
            }
        }
    }

    @Test func transferReceiveBuffer() throws {
        #expect(try parse("").transferReceiveBuffer == 16384)
        #expect(try parse("TransferReceiveBuffer = 0").transferReceiveBuffer == 0)
        #expect(try parse("TransferReceiveBuffer = 65536").transferReceiveBuffer == 65536)
        for text in ["TransferReceiveBuffer = 100", "TransferReceiveBuffer = 16777217"] {
            do {
                _ = try parse(text)
                Issue.record("'\(text)' was accepted")
            } catch {
                #expect(error.description.hasSuffix("expected 0 or 4096 ... 16777216 bytes"), "\(error)")
            }
        }
    }

    @Test func storageRetryInterval() throws {
        #expect(try parse("").storageRetryInterval == 600)
        #expect(try parse("StorageRetryInterval = 30").storageRetryInterval == 30)
        for text in ["StorageRetryInterval = 0", "StorageRetryInterval = 86401", "StorageRetryInterval = soon"] {
            do {
                _ = try parse(text)
                Issue.record("'\(text)' was accepted")
            } catch {
                #expect(error.description.hasSuffix("expected 1 ... 86400 seconds"), "\(error)")
            }
        }
    }

    @Test func flagsOverrideTheFile() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("eqconf-\(getpid())")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let path = dir.appendingPathComponent("a.conf").path
        try "BindAddress = 127.0.0.1:7001\nRingSize = 6\nFanout = 2\n".write(
            toFile: path, atomically: true, encoding: .utf8)
        let (c, source) = try AgentConfig.load(arguments: ["--config", path, "--RingSize", "8", "--Fanout=5"])
        #expect(source == path)
        #expect(c.membership.ringSize == 8)
        #expect(c.membership.fanout == 5)
        #expect(c.bindAddress.port == 7001)
    }

    @Test func wholeConfigurationIsValidated() throws {
        #expect(throws: ConfigError.invalid(key: "RingSize", reason: "must be 2...16")) {
            _ = try AgentConfig.load(arguments: ["--BindAddress", "127.0.0.1:1", "--RingSize", "20"])
        }
        #expect(
            throws: ConfigError.invalid(
                key: "HeartbeatTimeout", reason: "must exceed 2 * ProbeTimeout and be at most 3600000 ms")
        ) {
            _ = try AgentConfig.load(arguments: ["--BindAddress", "127.0.0.1:1", "--HeartbeatTimeout", "500"])
        }
        #expect(
            throws: ConfigError.invalid(
                key: "AdvertiseAddress", reason: "must be an address other nodes can reach, not a wildcard")
        ) {
            _ = try AgentConfig.load(arguments: ["--AdvertiseAddress", "0.0.0.0:7946"])
        }
        // The defaults alone are a valid configuration (the advertised address is found at startup).
        #expect(try AgentConfig.load(arguments: []).0 == AgentConfig())
        #expect(
            throws: ConfigError.badValue(
                source: "command line", line: 1, key: "Seeds", value: "", reason: "needs a value")
        ) {
            _ = try AgentConfig.load(arguments: ["--Seeds"])
        }
    }

    /// Issue 32: huge values of these settings trapped on overflow (SIGILL) at start or later. Each must now be a
    /// configuration error that names the setting, and the checks must not trap while checking.
    @Test(arguments: [
        "ProbeTimeout", "ProbeInterval", "GossipInterval", "ReconnectInterval", "HeartbeatTimeout", "SyncInterval",
        "MembersMax",
    ])
    func hugeSettingsAreRefusedByName(_ key: String) {
        for value in ["18446744073709551615", "9223372036854775807", "4611686018427387904"] {
            do {
                _ = try AgentConfig.load(arguments: ["--BindAddress", "127.0.0.1:1", "--\(key)", value])
                Issue.record("\(key) = \(value) was accepted")
            } catch {
                switch error {
                case .invalid(let named, _), .badValue(_, _, let named, _, _):
                    #expect(named == key, "\(key) = \(value): \(error)")
                default: Issue.record("\(key) = \(value): \(error)")
                }
            }
        }
    }

    /// docs/equicastd.conf documents every setting with its default: parsing it must give exactly the defaults.
    @Test func documentedExampleMatchesTheDefaults() throws {
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent()
        let text = try String(contentsOf: root.appendingPathComponent("docs/equicastd.conf"), encoding: .utf8)
        #expect(try parse(text) == AgentConfig())
        // It documents each of these keys (some commented out), and the parser knows each of them.
        for key in [
            "BindAddress", "AdvertiseAddress", "Seeds", "StateDirectory", "FleetKeyFile", "EncryptionEnabled",
            "ControlSocket", "NodeName", "LogLevel", "RingSize", "GossipInterval", "ProbeInterval", "ProbeTimeout",
            "HeartbeatTimeout", "Fanout", "IndirectChecks", "SuspicionMultiplier", "RetransmitMultiplier",
            "SyncInterval", "ReconnectInterval", "MembersMax", "SNMPAgentX", "SNMPAgentXSocket", "SNMPPingInterval",
            "StorageRetryInterval", "TransferReceiveBuffer",
        ] {
            #expect(
                text.contains("\n\(key) =") || text.contains("# \(key) ="),
                "docs/equicastd.conf does not document \(key)")
            var c = AgentConfig()
            do {
                try c.set(key, "x", source: "probe", line: 1)
            } catch {
                if case .unknownKey = error { Issue.record("\(key) is documented but the parser does not know it") }
            }
        }
    }
}
