import CNetSNMP
import EquicastCore

/// How loud a message from the subagent is (the daemon maps it onto its own log levels).
public enum SNMPLogLevel: Sendable {
    case debug, info, warning
}

/// equicastd's AgentX subagent: serves EQUICAST-LITE-MIB from the snapshot the daemon hands it and sends the
/// module's notifications through the device's snmpd.
///
/// It never blocks: the daemon adds `descriptors()` to its poll() set, caps its wait with the timeout, and calls
/// `process(readable:)` after every wait. When snmpd is absent or restarts, net-snmp retries the connection every
/// `pingInterval` seconds and registers the module again; the log says once that the master is unreachable and
/// once when it is back. net-snmp keeps its state in globals, so there is at most one subagent per process.
public final class SubAgent {
    /// The running subagent, for net-snmp's C callbacks.
    nonisolated(unsafe) static var current: SubAgent?

    public let socketPath: String
    public let pingInterval: Int32
    /// The state served; replace it with `update(_:)`.
    public private(set) var snapshot = SNMPSnapshot()
    /// Per-version counts derived from `snapshot.fleet`.
    var releases: [SNMPReleaseRow] = []
    /// Writable through equicastUpdateAdminStatus; `applyAdminStatus` makes a change durable first.
    public internal(set) var adminStatus: UpdateAdminStatus
    /// Called in a SET's ACTION phase (and again in UNDO with the old value): persists and applies the status;
    /// false if it could not be persisted, which fails the SET and changes nothing.
    let applyAdminStatus: (UpdateAdminStatus) -> Bool
    let log: (SNMPLogLevel, String) -> Void

    var memberTable: MIBTable?
    var fleetTable: MIBTable?
    var releaseTable: MIBTable?
    /// The value a SET in progress replaces, kept from RESERVE2 for UNDO.
    var adminStatusUndo: UpdateAdminStatus?

    var notificationBudget = NotificationBudget()
    var dropReportedAt: UInt64 = 0

    /// Whether the master has accepted our session (net-snmp's AgentX index callbacks).
    public internal(set) var connected = false
    var unreachableReported = false

    /// Sets net-snmp up as a subagent of the master at `socketPath` and registers the module. net-snmp keeps its
    /// own persistent files under `persistentDirectory` (nothing under /var/lib/snmp) and reads no snmp.conf.
    public init(
        socketPath: String, persistentDirectory: String, pingInterval: Int32 = 5, adminStatus: UpdateAdminStatus,
        applyAdminStatus: @escaping (UpdateAdminStatus) -> Bool, log: @escaping (SNMPLogLevel, String) -> Void
    ) {
        self.socketPath = socketPath
        self.pingInterval = pingInterval
        self.adminStatus = adminStatus
        self.applyAdminStatus = applyAdminStatus
        self.log = log
        SubAgent.current = self

        let library: Int32 = 0  // NETSNMP_DS_LIBRARY_ID
        let application: Int32 = 1  // NETSNMP_DS_APPLICATION_ID
        netsnmp_ds_set_boolean(application, 1, 1)  // NETSNMP_DS_AGENT_ROLE: subagent
        netsnmp_ds_set_string(application, 1, socketPath)  // NETSNMP_DS_AGENT_X_SOCKET
        netsnmp_ds_set_int(application, 3, pingInterval)  // NETSNMP_DS_AGENT_AGENTX_PING_INTERVAL
        netsnmp_ds_set_string(library, 8, persistentDirectory)  // NETSNMP_DS_LIB_PERSISTENT_DIR
        netsnmp_ds_set_boolean(library, 11, 1)  // NETSNMP_DS_LIB_ALARM_DONT_USE_SIG: alarms run from our loop
        netsnmp_ds_set_boolean(library, 6, 1)  // NETSNMP_DS_LIB_DONT_READ_CONFIGS
        netsnmp_ds_set_boolean(library, 17, 1)  // NETSNMP_DS_LIB_NO_TOKEN_WARNINGS

        // net-snmp's messages come to us (never to stderr): the connection ones drive `connected`.
        snmp_enable_calllog()
        // (SNMP_CALLBACK_LIBRARY, SNMP_CALLBACK_LOGGING), then (SNMP_CALLBACK_APPLICATION, SNMPD_CALLBACK_INDEX_START
        // and _STOP). Each closure captures nothing, so it passes as a C function pointer.
        snmp_register_callback(0, 4, { SubAgent.logCallback($0, $1, $2, $3) }, nil)
        snmp_register_callback(1, 10, { SubAgent.sessionStarted($0, $1, $2, $3) }, nil)
        snmp_register_callback(1, 11, { SubAgent.sessionStopped($0, $1, $2, $3) }, nil)

        init_agent("equicastd")
        registerScalars()
        registerAdminStatus()
        memberTable = MIBTable(
            name: "equicastMemberTable", oid: MIBTree.object(3, 5), columns: 2...10,
            indexType: SNMPValue.typeFixedOctetString, handler: { SubAgent.memberColumn($0, $1, $2, $3) })
        fleetTable = MIBTable(
            name: "equicastFleetTable", oid: MIBTree.objects + [6, 1], columns: 2...6,
            indexType: SNMPValue.typeFixedOctetString, handler: { SubAgent.fleetColumn($0, $1, $2, $3) })
        releaseTable = MIBTable(
            name: "equicastReleaseTable", oid: MIBTree.objects + [6, 2], columns: 2...11,
            indexType: SNMPValue.typeGauge, handler: { SubAgent.releaseColumn($0, $1, $2, $3) })
        if memberTable == nil || fleetTable == nil || releaseTable == nil {
            log(.warning, "SNMP: net-snmp refused a table registration; some tables are not served")
        }
        equicast_init_snmp_without_mibs("equicastd")
        if !connected { reportUnreachable() }
    }

    /// Stops the subagent (the master drops our registrations when the session closes).
    public func shutdown() {
        snmp_shutdown("equicastd")
        if SubAgent.current === self { SubAgent.current = nil }
    }

    /// Serves `snapshot` from now on. Tables are rebuilt only when their rows changed.
    public func update(_ snapshot: SNMPSnapshot) {
        let old = self.snapshot
        self.snapshot = snapshot
        if snapshot.members != old.members || memberTable?.rowCount != snapshot.members.count {
            memberTable?.replaceRows(snapshot.members.map { SNMPValue.nodeIDBytes($0.id) })
        }
        if snapshot.fleet != old.fleet || fleetTable?.rowCount != snapshot.fleet.count {
            fleetTable?.replaceRows(snapshot.fleet.map { SNMPValue.nodeIDBytes($0.id) })
            releases = SNMPReleaseRow.tally(snapshot.fleet)
            releaseTable?.replaceRows(integerIndexes: releases.map { $0.version })
        }
    }

    // MARK: the poll loop

    /// The descriptors net-snmp wants watched for reading, and how long (ms) until it has timed work (nil: none).
    public func descriptors() -> (fds: [Int32], timeoutMilliseconds: UInt64?) {
        var count: Int32 = 0
        var set = fd_set()
        equicast_fd_zero(&set)
        var tv = timeval(tv_sec: 0, tv_usec: 0)
        var block: Int32 = 1
        snmp_select_info(&count, &set, &tv, &block)
        var fds: [Int32] = []
        for fd in 0..<min(count, equicast_fd_setsize()) where equicast_fd_isset(fd, &set) != 0 { fds.append(fd) }
        let timeout = block != 0 ? nil : UInt64(max(0, tv.tv_sec)) * 1000 + UInt64(max(0, tv.tv_usec)) / 1000
        return (fds, timeout)
    }

    /// After a wait: reads what arrived on `readable` (net-snmp's descriptors among those poll() reported), then
    /// runs net-snmp's due timers (AgentX pings, reconnection, retransmissions).
    public func process(readable: [Int32]) {
        if !readable.isEmpty {
            var set = fd_set()
            equicast_fd_zero(&set)
            for fd in readable where fd >= 0 && fd < equicast_fd_setsize() { equicast_fd_set(fd, &set) }
            snmp_read(&set)
        }
        snmp_timeout()
        run_alarms()
        netsnmp_check_outstanding_agent_requests()
    }

    // MARK: connection state

    func reportUnreachable() {
        guard !unreachableReported else { return }
        unreachableReported = true
        log(
            .warning,
            "SNMP: the AgentX master at \(socketPath) is unreachable; reconnecting in the background "
                + "(gossip and transfers go on)")
    }

    static func sessionStarted(
        _ major: Int32, _ minor: Int32, _ serverArgument: UnsafeMutableRawPointer?,
        _ clientArgument: UnsafeMutableRawPointer?
    ) -> Int32 {
        guard let agent = SubAgent.current else { return 0 }
        agent.connected = true
        agent.unreachableReported = false
        agent.log(.info, "SNMP: registered EQUICAST-LITE-MIB with the AgentX master at \(agent.socketPath)")
        return 0
    }

    static func sessionStopped(
        _ major: Int32, _ minor: Int32, _ serverArgument: UnsafeMutableRawPointer?,
        _ clientArgument: UnsafeMutableRawPointer?
    ) -> Int32 {
        guard let agent = SubAgent.current else { return 0 }
        agent.connected = false
        agent.reportUnreachable()
        return 0
    }

    /// net-snmp's own messages: at debug level, except that a failed connection marks the master unreachable
    /// (logged once until it is back).
    static func logCallback(
        _ major: Int32, _ minor: Int32, _ serverArgument: UnsafeMutableRawPointer?,
        _ clientArgument: UnsafeMutableRawPointer?
    ) -> Int32 {
        let message = serverArgument
        guard let agent = SubAgent.current, let m = message?.assumingMemoryBound(to: snmp_log_message.self),
            let text = m.pointee.msg
        else { return 0 }
        var line = String(cString: text)
        while line.utf8.last == 10 { line = String(decoding: line.utf8.dropLast(), as: UTF8.self) }
        if SubAgent.mentions(line, "Failed to connect to the agentx master") {
            agent.connected = false
            agent.reportUnreachable()
        } else {
            agent.log(.debug, "net-snmp: \(line)")
        }
        return 0
    }

    /// Whether `text` contains `fragment`, compared byte for byte.
    static func mentions(_ text: String, _ fragment: String) -> Bool {
        let t = Array(text.utf8)
        let f = Array(fragment.utf8)
        guard !f.isEmpty, t.count >= f.count else { return false }
        for start in 0...(t.count - f.count) where t[start..<start + f.count].elementsEqual(f) { return true }
        return false
    }
}
