import EquicastCore
import EquicastPosix

/// A configuration problem, naming where it was: a line of the config file, or a command-line flag.
public enum ConfigError: Error, Equatable, CustomStringConvertible {
    case malformedLine(source: String, line: Int, text: String)
    case unknownKey(source: String, line: Int, key: String)
    case badValue(source: String, line: Int, key: String, value: String, reason: String)
    case invalid(key: String, reason: String)
    case unreadable(PosixError)

    public var description: String {
        switch self {
        case .malformedLine(let source, let line, let text):
            return "\(source):\(line): expected 'Key = value', found '\(text)'"
        case .unknownKey(let source, let line, let key):
            return "\(source):\(line): unknown setting '\(key)'"
        case .badValue(let source, let line, let key, let value, let reason):
            return "\(source):\(line): \(key) = \(value): \(reason)"
        case .invalid(let key, let reason):
            return "\(key): \(reason)"
        case .unreadable(let error):
            return "cannot read the config file: \(error)"
        }
    }
}

/// The agent's settings: the `key = value` config file (comments start with #), overridden by `--Key value`
/// flags. Every membership parameter is documented on `MembershipConfig`.
public struct AgentConfig: Equatable {
    /// Where the agent listens: UDP for gossip and probes, TCP (same port) for syncs and transfers.
    public var bindAddress = SocketAddress(ipv4: 0, 0, 0, 0, port: 7946)
    /// The address other nodes use to reach this one. Default: `BindAddress`, or when that is a wildcard, the
    /// source address of the route to the first reachable seed, else the first address of an interface that is
    /// up (not loopback, not link-local).
    public var advertiseAddress: SocketAddress?
    /// Addresses of nodes to join through (comma-separated); empty for the first node of a fleet.
    public var seeds: [SocketAddress] = []
    /// Node id, boot count and (later) releases and chunks live here.
    public var stateDirectory = "/var/lib/equicast"
    /// The 32-byte fleet key (hex or base64, mode 0600).
    public var fleetKeyFile = "/etc/equicast/fleet.key"
    /// `EncryptionEnabled`: seal frames with XChaCha20-Poly1305 (true) or send them in the clear with a keyed
    /// MAC (false; only for debugging on a trusted network). Every node of a fleet should agree.
    public var encryptionEnabled = true
    /// Unix socket for the `equicast` operator tool; defaults to StateDirectory/control.sock.
    public var controlSocket: String?
    /// A human-readable name for logs and the MIB; defaults to the node id.
    public var nodeName = ""
    public var logLevel = LogLevel.info
    public var membership = MembershipConfig()
    /// Release public keys this device trusts (comma-separated files). None: the node installs nothing and
    /// spreads nothing. Only these keys can authorise an install; the fleet key never can.
    public var releasePublicKeyFiles: [String] = []
    /// The device's product (hardware compatibility) string; releases for another product are refused.
    public var product = ""
    /// The firmware version the device runs until the first release is installed (later ones are recorded in
    /// the state directory).
    public var firmwareVersion: UInt64 = 0
    /// Run with `/bin/sh -c` when a release is downloaded and verified, with EQUICAST_IMAGE (path of the
    /// assembled image), EQUICAST_VERSION, EQUICAST_RELEASE (release id), EQUICAST_PRODUCT and
    /// EQUICAST_PREVIOUS_VERSION in the environment. Exit 0 means installed. Must be safe to run again (a
    /// power cut during it runs it again at the next start).
    public var installCommand = ""
    /// Run after a successful install (same environment); exit 0 within the release's health timeout commits.
    public var healthCommand = ""
    /// Run when the install or the health check fails (same environment); it should restore the previous
    /// firmware.
    public var rollbackCommand = ""
    /// `StorageRetryInterval`: seconds a download stopped by a full disk waits before trying again.
    public var storageRetryInterval = 600
    /// `TransferReceiveBuffer`: the receive buffer (SO_RCVBUF, bytes; Linux doubles it) of each connection this
    /// node opens to fetch chunks or sync. A node has up to 16 chunk requests out, each on its own connection;
    /// left to the kernel, each window grows until the link's queue is full, and every request, bitfield and
    /// probe then waits behind that queue. Capped, a node keeps at most about 16 windows of data in flight.
    /// One connection carries at most about the buffer per round trip (16 KiB: some 6 Mbit/s at 20 ms, enough
    /// for many peers at once); 0 leaves the buffer to the kernel, for long fat links.
    public var transferReceiveBuffer = 16 << 10
    /// `SNMPAgentX`: attach to the device's snmpd as an AgentX subagent and serve EQUICAST-LITE-MIB (only in
    /// builds with SNMP support). Off by default.
    public var snmpAgentX = false
    /// `SNMPAgentXSocket`: the master's AgentX socket: a Unix socket path, or `tcp:HOST:PORT`.
    public var snmpAgentXSocket = "/var/agentx/master"
    /// `SNMPPingInterval`: seconds between AgentX pings to the master, and between reconnection attempts while
    /// it is unreachable.
    public var snmpPingInterval = 5

    public init() {}

    public var effectiveControlSocket: String { controlSocket ?? stateDirectory + "/control.sock" }

    /// Applies a whole config file's text.
    public mutating func apply(fileText: String, source: String) throws(ConfigError) {
        var lineNumber = 0
        for rawLine in fileText.splitBytes(0x0a) {
            lineNumber += 1
            let line = (rawLine.cut(at: 0x23)?.before ?? rawLine).trimmingBlanks  // up to a '#' comment
            if line.isEmpty { continue }
            guard let (k, v) = line.cut(at: 0x3d) else {
                throw .malformedLine(source: source, line: lineNumber, text: line)
            }
            let key = k.trimmingBlanks
            let value = v.trimmingBlanks
            if key.isEmpty { throw .malformedLine(source: source, line: lineNumber, text: line) }
            try set(key, value, source: source, line: lineNumber)
        }
    }

    /// Sets one key. Keys are matched without regard to case.
    public mutating func set(_ key: String, _ value: String, source: String, line: Int) throws(ConfigError) {
        func bad(_ reason: String) -> ConfigError {
            .badValue(source: source, line: line, key: key, value: value, reason: reason)
        }
        func milliseconds() throws(ConfigError) -> UInt64 {
            guard let v = UInt64(value), v > 0 else { throw bad("expected a whole number of milliseconds") }
            return v
        }
        func seconds(max: Int) throws(ConfigError) -> Int {
            guard let v = Int(value), v >= 1, v <= max else { throw bad("expected 1 ... \(max) seconds") }
            return v
        }
        func count() throws(ConfigError) -> Int {
            guard let v = Int(value), v >= 0 else { throw bad("expected a whole number") }
            return v
        }
        func address(_ text: String) throws(ConfigError) -> SocketAddress {
            do throws(PosixError) { return try SocketAddress.parse(text) } catch { throw bad(error.description) }
        }
        switch key.asciiLowercased {
        case "bindaddress": bindAddress = try address(value)
        case "advertiseaddress": advertiseAddress = try address(value)
        case "seeds":
            var list: [SocketAddress] = []
            for part in value.splitBytes(0x2c) where !part.trimmingBlanks.isEmpty {
                list.append(try address(part.trimmingBlanks))
            }
            seeds = list
        case "statedirectory":
            guard value.hasBytePrefix("/") || value.hasBytePrefix(".") else { throw bad("expected a path") }
            stateDirectory = value
        case "fleetkeyfile": fleetKeyFile = value
        case "controlsocket": controlSocket = value
        case "nodename":
            guard value.utf8.count <= 64 else { throw bad("at most 64 bytes") }
            nodeName = value
        case "encryptionenabled":
            switch value.asciiLowercased {
            case "true", "yes", "on", "1": encryptionEnabled = true
            case "false", "no", "off", "0": encryptionEnabled = false
            default: throw bad("expected true or false")
            }
        case "loglevel":
            guard let level = LogLevel(name: value) else { throw bad("expected error, warning, info or debug") }
            logLevel = level
        case "ringsize": membership.ringSize = try count()
        case "gossipinterval": membership.gossipInterval = try milliseconds()
        case "probeinterval": membership.probeInterval = try milliseconds()
        case "probetimeout": membership.probeTimeout = try milliseconds()
        case "heartbeattimeout": membership.heartbeatTimeout = try milliseconds()
        case "fanout": membership.fanout = try count()
        case "indirectchecks": membership.indirectChecks = try count()
        case "suspicionmultiplier": membership.suspicionMultiplier = try count()
        case "retransmitmultiplier": membership.retransmitMultiplier = try count()
        case "syncinterval": membership.syncInterval = try milliseconds()
        case "membersmax": membership.membersMax = try count()
        case "reconnectinterval": membership.reconnectInterval = try milliseconds()
        case "releasepublickeyfile":
            releasePublicKeyFiles = value.splitBytes(0x2c).map { $0.trimmingBlanks }.filter { !$0.isEmpty }
        case "product":
            guard value.utf8.count <= ReleaseManifest.productByteCountMax else {
                throw bad("longer than \(ReleaseManifest.productByteCountMax) bytes")
            }
            product = value
        case "firmwareversion":
            guard let v = UInt64(value) else { throw bad("expected a whole number") }
            firmwareVersion = v
        case "installcommand": installCommand = value
        case "healthcommand": healthCommand = value
        case "rollbackcommand": rollbackCommand = value
        case "storageretryinterval": storageRetryInterval = try seconds(max: 86_400)
        case "transferreceivebuffer":
            let v = try count()
            guard v == 0 || (v >= 4096 && v <= 16 << 20) else { throw bad("expected 0 or 4096 ... 16777216 bytes") }
            transferReceiveBuffer = v
        case "snmpagentx":
            switch value.asciiLowercased {
            case "on", "true", "yes", "1": snmpAgentX = true
            case "off", "false", "no", "0": snmpAgentX = false
            default: throw bad("expected on or off")
            }
        case "snmpagentxsocket":
            guard !value.isEmpty, value.utf8.count <= 255 else { throw bad("expected a socket path or tcp:HOST:PORT") }
            snmpAgentXSocket = value
        case "snmppinginterval": snmpPingInterval = try seconds(max: 3600)
        default:
            throw .unknownKey(source: source, line: line, key: key)
        }
    }

    /// Checks the whole configuration once every source has been applied.
    public func validate() throws(ConfigError) {
        if let (field, reason) = membership.validate() { throw .invalid(key: field, reason: reason) }
        if bindAddress.port == 0 { throw .invalid(key: "BindAddress", reason: "needs a port") }
        if !releasePublicKeyFiles.isEmpty && product.isEmpty {
            throw .invalid(
                key: "Product", reason: "must be set when ReleasePublicKeyFile is (releases name the product)")
        }
        if let a = advertiseAddress, a.isUnspecified {
            throw .invalid(key: "AdvertiseAddress", reason: "must be an address other nodes can reach, not a wildcard")
        }
    }
}

extension AgentConfig {
    /// Builds the configuration from `--config FILE` (if given) and then every `--Key value` or `--Key=value`
    /// flag, in order; returns it with the config file's path (for SIGHUP reloads).
    public static func load(arguments: [String]) throws(ConfigError) -> (AgentConfig, String?) {
        var config = AgentConfig()
        var overrides: [(String, String)] = []
        var path: String?
        var i = 0
        while i < arguments.count {
            let arg = arguments[i]
            guard arg.hasBytePrefix("--"), arg.utf8.count > 2 else {
                throw .malformedLine(source: "command line", line: i + 1, text: arg)
            }
            var key = String(decoding: arg.utf8.dropFirst(2), as: UTF8.self)
            var value: String
            if let (k, v) = key.cut(at: 0x3d) {
                key = k
                value = v
            } else {
                guard i + 1 < arguments.count else {
                    throw .badValue(source: "command line", line: i + 1, key: key, value: "", reason: "needs a value")
                }
                i += 1
                value = arguments[i]
            }
            if key.asciiLowercased.sameBytes("config") { path = value } else { overrides.append((key, value)) }
            i += 1
        }
        if let path {
            let bytes: [UInt8]
            do throws(PosixError) { bytes = try FileSystem.readFile(path, limit: 1 << 20) } catch {
                throw .unreadable(error)
            }
            try config.apply(fileText: String(decoding: bytes, as: UTF8.self), source: path)
        }
        for (n, (key, value)) in overrides.enumerated() {
            try config.set(key, value, source: "command line flag --\(key)", line: n + 1)
        }
        try config.validate()
        return (config, path)
    }
}
