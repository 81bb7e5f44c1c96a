import CNetSNMP
import EquicastCore

/// equicastMemberTable, equicastFleetTable and equicastReleaseTable: one column handler each.
extension SubAgent {
    static func memberColumn(
        _ handler: UnsafeMutablePointer<netsnmp_mib_handler>?,
        _ reginfo: UnsafeMutablePointer<netsnmp_handler_registration>?,
        _ reqinfo: UnsafeMutablePointer<netsnmp_agent_request_info>?,
        _ requests: UnsafeMutablePointer<netsnmp_request_info>?
    ) -> Int32 {
        MIBTable.answer(reqinfo, requests) { row, column in
            guard let agent = SubAgent.current, row >= 0, row < agent.snapshot.members.count else { return nil }
            let m = agent.snapshot.members[row]
            switch column {
            case 2: return SNMPValue.addressType(m.address)
            case 3: return SNMPValue.address(m.address)
            case 4: return .gauge(UInt32(m.address.port))
            case 5: return SNMPValue.memberState(m.state)
            case 6: return .gauge(UInt32(truncatingIfNeeded: m.incarnation >> 32))
            case 7: return .gauge(UInt32(truncatingIfNeeded: m.incarnation))
            case 8: return SNMPValue.version(m.firmwareVersion)
            case 9: return SNMPValue.updateState(m.updateState)
            case 10: return .timeTicks(m.lastHeardAge)
            default: return nil
            }
        }
    }

    static func fleetColumn(
        _ handler: UnsafeMutablePointer<netsnmp_mib_handler>?,
        _ reginfo: UnsafeMutablePointer<netsnmp_handler_registration>?,
        _ reqinfo: UnsafeMutablePointer<netsnmp_agent_request_info>?,
        _ requests: UnsafeMutablePointer<netsnmp_request_info>?
    ) -> Int32 {
        MIBTable.answer(reqinfo, requests) { row, column in
            guard let agent = SubAgent.current, row >= 0, row < agent.snapshot.fleet.count else { return nil }
            let f = agent.snapshot.fleet[row]
            switch column {
            case 2: return SNMPValue.version(f.firmwareVersion)
            case 3: return SNMPValue.version(f.targetVersion)
            case 4: return SNMPValue.updateState(f.updateState)
            case 5: return .gauge(f.chunksVerified)
            case 6: return .gauge(f.chunksTotal)
            default: return nil
            }
        }
    }

    /// Columns 3 ... 11 count the nodes in update states announced ... rolledBack.
    static func releaseColumn(
        _ handler: UnsafeMutablePointer<netsnmp_mib_handler>?,
        _ reginfo: UnsafeMutablePointer<netsnmp_handler_registration>?,
        _ reqinfo: UnsafeMutablePointer<netsnmp_agent_request_info>?,
        _ requests: UnsafeMutablePointer<netsnmp_request_info>?
    ) -> Int32 {
        MIBTable.answer(reqinfo, requests) { row, column in
            guard let agent = SubAgent.current, row >= 0, row < agent.releases.count else { return nil }
            let r = agent.releases[row]
            if column == 2 { return .gauge(r.running) }
            let state = Int(column) - 2  // announced (1) is column 3
            guard state >= 1, state < r.byState.count else { return nil }
            return .gauge(r.byState[state])
        }
    }
}
