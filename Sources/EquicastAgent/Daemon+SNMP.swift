import EquicastCore
import EquicastCrypto
import EquicastPosix

#if canImport(EquicastSNMP)
    import EquicastSNMP
#endif

/// The update admin status, and (in builds with SNMP) the AgentX subagent: started from the config, fed a
/// snapshot of the node at most once a second, given its descriptors in the poll set, and told of events that
/// become notifications.
extension Daemon {
    static func adminStatusPath(_ stateDirectory: String) -> String { stateDirectory + "/update-admin-status" }

    /// Reads the persisted admin status: true when installs are deferred. A missing file means allow; a file
    /// that cannot be read or understood means defer (never install against an operator's wish).
    static func loadAdminStatus(_ stateDirectory: String, log: inout Logger) -> Bool {
        let path = adminStatusPath(stateDirectory)
        guard FileSystem.exists(path) else { return false }
        let text: String
        do throws(PosixError) {
            text = String(decoding: try FileSystem.readFile(path, limit: 64), as: UTF8.self).trimmingBlanks
        } catch {
            log.log(.warning, "cannot read \(path) (\(error)): installs are deferred until it is set again")
            return true
        }
        switch text {
        case "allow": return false
        case "defer": return true
        default:
            log.log(
                .warning, "\(path) holds '\(text)', not allow or defer: installs are deferred until it is set again")
            return true
        }
    }

    /// Persists, then applies, the admin status. Allowing installs again installs a release already staged
    /// (verified and signed); it never fetches or starts anything else. Returns false, changing nothing, if the
    /// status could not be written.
    func setInstallsDeferred(_ deferred: Bool) -> Bool {
        let path = Daemon.adminStatusPath(config.stateDirectory)
        do throws(PosixError) {
            try FileSystem.writeFileAtomically(path, Array((deferred ? "defer\n" : "allow\n").utf8), mode: 0o600)
        } catch {
            log.log(.error, "cannot persist the update admin status: \(error)")
            return false
        }
        guard deferred != pipeline.installsDeferred else { return true }
        pipeline.installsDeferred = deferred
        log.log(.info, "update admin status set to \(deferred ? "defer" : "allow")")
        if !deferred && pipeline.record.state == .staged && pipeline.hook == nil && node.heldReleaseInstallable {
            pipeline.resumeAfterDownload = true
        }
        return true
    }

    #if canImport(EquicastSNMP)
        func startSNMP(now: UInt64) {
            guard config.snmpAgentX else { return }
            let directory = config.stateDirectory + "/snmp"
            do throws(PosixError) {
                if !FileSystem.exists(directory) { try FileSystem.makeDirectory(directory) }
            } catch {
                log.log(.error, "SNMP: cannot create \(directory): \(error); the subagent is off")
                return
            }
            log.log(.info, "SNMP: AgentX subagent of the master at \(config.snmpAgentXSocket)")
            snmp = SubAgent(
                socketPath: config.snmpAgentXSocket, persistentDirectory: directory,
                pingInterval: Int32(config.snmpPingInterval),
                adminStatus: pipeline.installsDeferred ? .deferInstalls : .allow,
                applyAdminStatus: { status in self.setInstallsDeferred(status == .deferInstalls) },
                log: { level, text in
                    switch level {
                    case .debug: self.log.log(.debug, text)
                    case .info: self.log.log(.info, text)
                    case .warning: self.log.log(.warning, text)
                    }
                })
            snmp?.update(snmpSnapshot(now: now))
            nextSNMPSnapshot = now + 1000
        }

        func stopSNMP() {
            snmp?.shutdown()
            snmp = nil
        }

        /// net-snmp's descriptors for the poll set; caps `wake` at net-snmp's next timer.
        func snmpWatch(now: UInt64, wake: inout UInt64) -> [Int32] {
            guard let snmp else { return [] }
            let (fds, timeout) = snmp.descriptors()
            if let t = timeout { wake = min(wake, now + t) }
            wake = min(wake, nextSNMPSnapshot)
            return fds
        }

        func snmpProcess(readable: [Int32], now: UInt64) {
            guard let snmp else { return }
            if now >= nextSNMPSnapshot {
                snmp.update(snmpSnapshot(now: now))
                nextSNMPSnapshot = now + 1000
            }
            snmp.process(readable: readable)
        }

        func notifySNMP(_ e: NodeEvent) {
            guard let snmp else { return }
            let now = MonotonicClock.milliseconds()
            switch e {
            case .memberJoined(let id, let address): snmp.send(.memberJoined(id, address), now: now)
            case .memberFailed(let id):
                if let m = node.member(id) { snmp.send(.memberFailed(id, m.address), now: now) }
            case .integrityViolation(let peer, let address, let release, let chunk):
                snmp.send(
                    .integrityViolation(
                        peer: peer, address: address, release: release.bytes,
                        reason: "wrong bytes for chunk \(chunk)"), now: now)
            case .releaseRefused(let error, let from):
                // Only a failed verification is an integrity violation (not a release for another product).
                switch error {
                case .badSignature, .untrustedSigner, .badChunk:
                    snmp.send(
                        .integrityViolation(peer: node.id, address: from, release: [], reason: "\(error)"), now: now)
                default: break
                }
            default: break
            }
        }

        /// Update outcomes as notifications (called by `setUpdate`).
        func notifySNMP(update state: UpdateState, reason: String) {
            guard let snmp, let held = node.heldRelease else { return }
            let now = MonotonicClock.milliseconds()
            switch state {
            case .committed:
                snmp.send(
                    .firmwareInstalled(version: pipeline.record.installedVersion, release: held.releaseID.bytes),
                    now: now)
            case .failed:
                snmp.send(.updateFailed(version: held.version, release: held.releaseID.bytes, reason: reason), now: now)
            case .rolledBack:
                snmp.send(.rolledBack(version: held.version, release: held.releaseID.bytes, reason: reason), now: now)
            default: break
            }
        }

        func snmpSnapshot(now: UInt64) -> SNMPSnapshot {
            var s = SNMPSnapshot()
            s.nodeID = node.id
            s.nodeName = config.nodeName
            s.agentVersion = AgentVersion.string
            s.uptime = UInt32(clamping: (now - startedAt) / 10)
            s.ringSize = UInt32(clamping: config.membership.ringSize)
            s.gossipInterval = UInt32(clamping: config.membership.gossipInterval)
            s.heartbeatTimeout = UInt32(clamping: config.membership.heartbeatTimeout)
            s.encryptionEnabled = config.encryptionEnabled
            s.membersAlive = UInt32(clamping: node.count(.alive))
            s.membersSuspect = UInt32(clamping: node.count(.suspect))
            s.membersFailed = UInt32(clamping: node.count(.failed))
            s.membersLeft = UInt32(clamping: node.count(.left))
            s.firmwareVersion = node.installedVersion
            s.targetVersion = node.heldReleaseInstallable ? node.heldRelease?.version ?? 0 : 0
            s.releaseID = node.heldRelease?.releaseID.bytes ?? []
            s.updateState = node.updateState
            s.chunksVerified = UInt32(clamping: node.releaseHaves?.setCount ?? 0)
            s.chunksTotal = UInt32(clamping: node.releaseHaves?.count ?? 0)
            let c = node.counters
            s.bytesDownloaded = c.bytesDownloaded
            s.bytesServed = c.bytesServed
            s.authenticationFailures = c.authenticationFailures
            s.replaysRejected = c.replaysRejected
            s.decodeErrors = c.decodeErrors
            s.badChunks = c.badChunks
            s.signatureFailures = c.manifestsRefused
            // Both lists are in id order: one merge walk pairs each member with its status report.
            let statuses = node.fleetStatuses
            var j = 0
            for m in node.members {
                while j < statuses.count && statuses[j].node < m.id { j += 1 }
                let status = j < statuses.count && statuses[j].node == m.id ? statuses[j] : nil
                let age = m.id == node.id || m.lastHeard == 0 ? 0 : UInt32(clamping: (now - m.lastHeard) / 10)
                s.members.append(
                    SNMPMemberRow(
                        id: m.id, address: m.address, state: m.state, incarnation: m.incarnation,
                        firmwareVersion: status?.installedVersion ?? 0, updateState: status?.state ?? .idle,
                        lastHeardAge: age))
            }
            s.fleet = statuses.map {
                SNMPFleetRow(
                    id: $0.node, firmwareVersion: $0.installedVersion, targetVersion: $0.targetVersion,
                    updateState: $0.state, chunksVerified: UInt32($0.chunksHave), chunksTotal: UInt32($0.chunksTotal))
            }
            return s
        }
    #else
        func startSNMP(now: UInt64) {
            if config.snmpAgentX { log.log(.warning, "SNMPAgentX = on, but this build has no SNMP support") }
        }
        func stopSNMP() {}
        func snmpWatch(now: UInt64, wake: inout UInt64) -> [Int32] { [] }
        func snmpProcess(readable: [Int32], now: UInt64) {}
        func notifySNMP(_ e: NodeEvent) {}
        func notifySNMP(update state: UpdateState, reason: String) {}
    #endif
}
