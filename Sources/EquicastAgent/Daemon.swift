import EquicastCore
import EquicastCrypto
import EquicastPosix

#if canImport(EquicastSNMP)
    import EquicastSNMP
#endif

/// equicastd's driver: one thread, one poll() loop over the UDP socket, the TCP listener, TCP connections and
/// the control socket, feeding the sans-IO `Node` and carrying out what it asks.
public final class Daemon {
    let config: AgentConfig
    var log: Logger
    var churnLog = ChurnLog()
    let node: Node
    let udp: UDPSocket
    let tcp: Listener
    let control: Listener
    /// The fleet keys' ids: a stream whose first header names another key is closed before its body is read.
    let keyIDs: [UInt32]
    /// The state directory's lock, held (open) for the daemon's life.
    let stateLock: Int32
    var connections: [Int32: Connection] = [:]
    var nextAcceptID: UInt64 = 1
    /// Accepted connections closed at once because every slot was held by authenticated peers.
    var connectionsRefused: UInt64 = 0
    /// Unauthenticated accepted connections closed to make room for a newcomer.
    var connectionsEvicted: UInt64 = 0
    /// Every stream read lands here first (one buffer, not one allocation per read).
    var readBuffer = [UInt8](repeating: 0, count: 65536)
    var poller = Poller()
    let startedAt: UInt64
    var terminateRequestedAt: UInt64?
    let configPath: String?
    /// The release pipeline's state: the store, the update record, the image, the hook (ReleasePipeline.swift).
    var pipeline: ReleasePipeline
    #if canImport(EquicastSNMP)
        var snmp: SubAgent?
        var nextSNMPSnapshot: UInt64 = 0
    #endif

    public init(config: AgentConfig, configPath: String?) throws(AgentError) {
        self.config = config
        self.configPath = configPath
        self.log = Logger(level: config.logLevel)
        let now = MonotonicClock.milliseconds()
        startedAt = now
        let state: NodeState
        let identity: NodeIdentity
        let key: SymmetricKey
        let store: ReleaseStore
        do throws(PosixError) {
            try FileSystem.makeDirectory(config.stateDirectory, mode: 0o700)
            stateLock = try FileSystem.lockDirectory(config.stateDirectory)
            (state, identity) = try NodeState.loadAndAdvance(directory: config.stateDirectory)
            key = try KeyFile.loadSymmetric(config.fleetKeyFile)
            udp = try UDPSocket(bindingTo: config.bindAddress)
            tcp = try Listener(tcp: udp.localAddress)
            control = try Listener(unixPath: config.effectiveControlSocket)
            store = try ReleaseStore(stateDirectory: config.stateDirectory)
        } catch {
            throw .startup(error)
        }
        pipeline = ReleasePipeline(store: store, firmwareVersion: config.firmwareVersion, now: now)
        let releaseSettings = try Daemon.releaseSettings(config, record: pipeline.record)
        guard let (announced, how) = Daemon.addressToAnnounce(config: config, bound: udp.localAddress) else {
            throw .config(
                .invalid(
                    key: "AdvertiseAddress",
                    reason: "BindAddress \(config.bindAddress) is a wildcard and no address to announce was found "
                        + "(no route to a seed, no interface up); set AdvertiseAddress"))
        }
        let keyring = try! FleetKeyring(primary: FleetKey(master: key))  // one key cannot clash with itself
        keyIDs = keyring.keys.map { $0.keyID }
        node = Node(
            identity: identity, address: announced, bootCount: state.bootCount, keyring: keyring,
            encryptionEnabled: config.encryptionEnabled, config: config.membership, seeds: config.seeds,
            randomSeed: secureRandomBytes(32), now: now, release: releaseSettings)
        log.log(
            .info,
            "equicastd \(AgentVersion.string) node \(state.id) (boot \(state.bootCount)) listening on \(udp.localAddress)"
                + ", announcing \(announced)\(how)"
                + (config.seeds.isEmpty ? "" : ", joining through \(config.seeds.count) seed(s)"))
        if let old = state.replacedID {
            log.log(
                .warning,
                "node id changed from \(old) to \(state.id): \(config.stateDirectory) had no node.key (made by a "
                    + "version without node identities); the fleet will see \(old) stop answering and this node join")
        }
        if releaseSettings.trustedKeys.isEmpty {
            log.log(.info, "no ReleasePublicKeyFile: this node neither installs nor spreads releases")
        } else {
            log.log(
                .info,
                "product \(config.product), firmware version \(pipeline.record.installedVersion) (\(pipeline.record.state.name)), "
                    + "\(releaseSettings.trustedKeys.count) trusted release key(s)")
        }
        pipeline.installsDeferred = Daemon.loadAdminStatus(config.stateDirectory, log: &log)
        if pipeline.installsDeferred { log.log(.info, "installs are deferred (update admin status 'defer')") }
        restoreReleases(now: now)
        startSNMP(now: now)
        flushNode(now: now)
    }

    /// What the node tells others to reach it by, and (for the log) how it was chosen when not configured.
    static func addressToAnnounce(config: AgentConfig, bound: SocketAddress) -> (SocketAddress, String)? {
        if let a = config.advertiseAddress { return (a.port == 0 ? a.with(port: bound.port) : a, "") }
        if !bound.isUnspecified { return (bound, "") }
        for seed in config.seeds where seed.family == bound.family {
            if let source = try? AddressDiscovery.sourceAddress(towards: seed), !source.isUnspecified {
                return (source.with(port: bound.port), " (source address of the route to seed \(seed))")
            }
        }
        if let (address, interface) = AddressDiscovery.interfaceAddress(bound.family) {
            return (address.with(port: bound.port), " (first address of interface \(interface))")
        }
        return nil
    }
}

/// Why the daemon could not start or had to stop.
public enum AgentError: Error, CustomStringConvertible {
    case startup(PosixError)
    case runtime(PosixError)
    case config(ConfigError)

    public var description: String {
        switch self {
        case .startup(let e): return "cannot start: \(e)"
        case .runtime(let e): return "stopped: \(e)"
        case .config(let e): return "configuration: \(e)"
        }
    }
}
