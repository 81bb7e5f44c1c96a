import CNetSNMP

/// The scalar groups (equicastNode, equicastConfig, the member counts, equicastFirmware, equicastCounters): one
/// registration per object, one handler for all, which reads the snapshot.
extension SubAgent {
    static let modeGet: Int32 = 160  // MODE_GET (SNMP_MSG_GET)
    static let noSuchInstance: Int32 = 129  // SNMP_NOSUCHINSTANCE

    /// (group, item) of every read-only scalar under equicastObjects.
    static let scalars: [(oid, oid, String)] = [
        (1, 1, "equicastNodeId"), (1, 2, "equicastNodeName"), (1, 3, "equicastProtocolProfile"),
        (1, 4, "equicastAgentVersion"), (1, 5, "equicastUptime"),
        (2, 1, "equicastRingSize"), (2, 2, "equicastGossipInterval"), (2, 3, "equicastHeartbeatTimeout"),
        (2, 4, "equicastEncryptionEnabled"),
        (3, 1, "equicastMembersAlive"), (3, 2, "equicastMembersSuspect"), (3, 3, "equicastMembersFailed"),
        (3, 4, "equicastMembersLeft"),
        (4, 1, "equicastFirmwareVersion"), (4, 2, "equicastTargetVersion"), (4, 3, "equicastTargetReleaseId"),
        (4, 4, "equicastUpdateState"), (4, 6, "equicastChunksVerified"), (4, 7, "equicastChunksTotal"),
        (4, 8, "equicastBytesDownloaded"), (4, 9, "equicastBytesServed"),
        (5, 1, "equicastAuthFailures"), (5, 2, "equicastReplaysRejected"), (5, 3, "equicastDecodeErrors"),
        (5, 4, "equicastBadChunks"), (5, 5, "equicastSignatureFailures"),
    ]

    func registerScalars() {
        for (group, item, name) in SubAgent.scalars {
            let oid = MIBTree.object(group, item)
            let registration = oid.withUnsafeBufferPointer {
                netsnmp_create_handler_registration(
                    name, { SubAgent.scalarHandler($0, $1, $2, $3) }, $0.baseAddress, $0.count, 1)
            }
            if let registration { netsnmp_register_scalar(registration) }
        }
    }

    func scalar(_ group: oid, _ item: oid) -> SNMPValue? {
        let s = snapshot
        switch (group, item) {
        case (1, 1): return SNMPValue.nodeID(s.nodeID)
        case (1, 2): return SNMPValue.text(s.nodeName, max: 255)
        case (1, 3): return SNMPValue.text("lite", max: 32)
        case (1, 4): return SNMPValue.text(s.agentVersion, max: 64)
        case (1, 5): return .timeTicks(s.uptime)
        case (2, 1): return .gauge(s.ringSize)
        case (2, 2): return .gauge(s.gossipInterval)
        case (2, 3): return .gauge(s.heartbeatTimeout)
        case (2, 4): return SNMPValue.truth(s.encryptionEnabled)
        case (3, 1): return .gauge(s.membersAlive)
        case (3, 2): return .gauge(s.membersSuspect)
        case (3, 3): return .gauge(s.membersFailed)
        case (3, 4): return .gauge(s.membersLeft)
        case (4, 1): return SNMPValue.version(s.firmwareVersion)
        case (4, 2): return SNMPValue.version(s.targetVersion)
        case (4, 3): return .octets(s.releaseID)
        case (4, 4): return SNMPValue.updateState(s.updateState)
        case (4, 6): return .gauge(s.chunksVerified)
        case (4, 7): return .gauge(s.chunksTotal)
        case (4, 8): return .counter64(s.bytesDownloaded)
        case (4, 9): return .counter64(s.bytesServed)
        case (5, 1): return .counter64(s.authenticationFailures)
        case (5, 2): return .counter64(s.replaysRejected)
        case (5, 3): return .counter64(s.decodeErrors)
        case (5, 4): return .counter64(s.badChunks)
        case (5, 5): return .counter64(s.signatureFailures)
        default: return nil
        }
    }

    static func scalarHandler(
        _ handler: UnsafeMutablePointer<netsnmp_mib_handler>?,
        _ reginfo: UnsafeMutablePointer<netsnmp_handler_registration>?,
        _ reqinfo: UnsafeMutablePointer<netsnmp_agent_request_info>?,
        _ requests: UnsafeMutablePointer<netsnmp_request_info>?
    ) -> Int32 {
        guard let reginfo, let reqinfo, reqinfo.pointee.mode == SubAgent.modeGet, let root = reginfo.pointee.rootoid,
            reginfo.pointee.rootoid_len >= 3
        else { return 0 }
        // The scalar helper registered the object's OID with its instance, .0, appended.
        let length = reginfo.pointee.rootoid_len
        let value = SubAgent.current?.scalar(root[length - 3], root[length - 2])
        var next = requests
        while let request = next {
            next = request.pointee.next
            if let value, let vb = request.pointee.requestvb {
                value.store(in: vb)
            } else {
                netsnmp_set_request_error(reqinfo, request, SubAgent.noSuchInstance)
            }
        }
        return 0
    }
}
