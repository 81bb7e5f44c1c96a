import EquicastCore
import EquicastPosix

/// The control socket's protocol: one request line (`status`, `members`, `broadcast TEXT`), then the agent writes its answer and
/// closes. Answers are tab-separated `key value` lines (status) or rows (members), easy to parse and to read.
enum ControlProtocol {
    /// A request line, parsed: what it asks for, or the line to answer a request that is not one.
    enum Request: Equatable {
        case status
        case members
        case broadcast([UInt8])
        case refused(String)

        /// The longest request line read (then the connection is closed unanswered).
        static let lineByteCountMax = 1024

        /// Parses one request line (without its newline); any bytes, never traps.
        init(line: [UInt8]) {
            let request = String(decoding: line, as: UTF8.self).trimmingBlanks
            switch request {
            case "status": self = .status
            case "members": self = .members
            default:
                if let (verb, text) = request.cut(at: 0x20), verb.sameBytes("broadcast"), !text.isEmpty {
                    let payload = Array(text.utf8)
                    self =
                        payload.count <= GossipEvent.payloadByteCountMax
                        ? .broadcast(payload)
                        : .refused("error\tbroadcast payload over \(GossipEvent.payloadByteCountMax) bytes\n")
                } else {
                    self = .refused("error\tunknown request '\(request)' (status, members, broadcast TEXT)\n")
                }
            }
        }
    }

    static func respond(to request: Request, daemon: Daemon, now: UInt64) -> String {
        let node = daemon.node
        switch request {
        case .status:
            let c = node.counters
            var lines: [(String, String)] = [
                ("node", node.id.description),
                ("name", daemon.config.nodeName.isEmpty ? node.id.description : daemon.config.nodeName),
                ("version", AgentVersion.string),
                ("profile", "lite"),
                ("address", node.address.description),
                ("incarnation", "\(node.incarnation)"),
                ("uptime_ms", "\(now - daemon.startedAt)"),
                ("encryption", daemon.config.encryptionEnabled ? "on" : "off"),
                ("ring_size", "\(daemon.config.membership.ringSize)"),
                ("gossip_interval_ms", "\(daemon.config.membership.gossipInterval)"),
                ("heartbeat_timeout_ms", "\(daemon.config.membership.heartbeatTimeout)"),
            ]
            for s in MemberState.allCases { lines.append(("members_\(s)", "\(node.count(s))")) }
            lines += [
                ("packets_in", "\(c.packetsIn)"), ("packets_out", "\(c.packetsOut)"),
                ("bytes_in", "\(c.bytesIn)"), ("bytes_out", "\(c.bytesOut)"),
                ("decode_errors", "\(c.decodeErrors)"), ("authentication_failures", "\(c.authenticationFailures)"),
                ("replays_rejected", "\(c.replaysRejected)"), ("claims_refused", "\(c.claimsRefused)"),
                ("introductions_refused", "\(c.introductionsRefused)"),
                ("signatures_checked", "\(c.signaturesChecked)"), ("signatures_refused", "\(c.signaturesRefused)"),
                ("syncs_started", "\(c.syncsStarted)"),
                ("syncs_completed", "\(c.syncsCompleted)"), ("syncs_failed", "\(c.syncsFailed)"),
                ("syncs_served", "\(c.syncsServed)"), ("probes_sent", "\(c.probesSent)"),
                ("suspicions_raised", "\(c.suspicionsRaised)"), ("refutations", "\(c.refutations)"),
                ("events_delivered", "\(c.eventsDelivered)"),
                ("firmware_version", "\(node.installedVersion)"), ("update_state", node.updateState.name),
                ("update_state_ms_ago", "\(now - min(now, daemon.pipeline.updateChangedAt))"),
                ("chunks_complete_ms_ago", daemon.pipeline.chunksCompleteAt.map { "\(now - min(now, $0))" } ?? "never"),
                ("update_admin_status", daemon.pipeline.installsDeferred ? "defer" : "allow"),
                ("target_version", node.heldReleaseInstallable ? "\(node.heldRelease?.version ?? 0)" : "0"),
                ("chunks_verified_held", "\(node.releaseHaves?.setCount ?? 0)"),
                ("chunks_total", "\(node.releaseHaves?.count ?? 0)"),
                ("chunks_verified", "\(c.chunksVerified)"), ("bad_chunks", "\(c.badChunks)"),
                ("bytes_downloaded", "\(c.bytesDownloaded)"), ("bytes_served", "\(c.bytesServed)"),
                ("manifests_accepted", "\(c.manifestsAccepted)"), ("manifests_refused", "\(c.manifestsRefused)"),
                ("chunk_requests_failed", "\(c.chunkRequestsFailed)"),
                ("connections_refused", "\(daemon.connectionsRefused)"),
                ("connections_evicted", "\(daemon.connectionsEvicted)"),
            ]
            return lines.map { $0.0 + "\t" + $0.1 + "\n" }.joined()
        case .members:
            var out = "id\taddress\tstate\tincarnation\tlast_heard_ms_ago\n"
            for m in node.members {
                let heard = m.id == node.id ? "0" : (m.lastHeard == 0 ? "never" : "\(now - m.lastHeard)")
                out += "\(m.id)\t\(m.address)\t\(m.state)\t\(m.incarnation)\t\(heard)\n"
            }
            return out
        case .broadcast(let payload):
            node.handleCommand(.broadcast(payload), now: now)
            return "ok\tbroadcast queued\n"
        case .refused(let line):
            return line
        }
    }
}
