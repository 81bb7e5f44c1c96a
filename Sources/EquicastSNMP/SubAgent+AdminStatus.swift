import CNetSNMP

/// equicastUpdateAdminStatus, the module's one writable object. net-snmp runs a SET in phases: the value's type,
/// length and range are checked in RESERVE1, the old value is kept in RESERVE2, ACTION persists and applies the
/// new one (and fails the SET if it cannot be persisted), UNDO puts the old one back, COMMIT and FREE forget it.
extension SubAgent {
    static let setReserve1: Int32 = 0
    static let setReserve2: Int32 = 1
    static let setAction: Int32 = 2
    static let setCommit: Int32 = 3
    static let setFree: Int32 = 4
    static let setUndo: Int32 = 5

    func registerAdminStatus() {
        let oid = MIBTree.object(4, 5)
        let registration = oid.withUnsafeBufferPointer {
            netsnmp_create_handler_registration(
                "equicastUpdateAdminStatus", { SubAgent.adminStatusHandler($0, $1, $2, $3) }, $0.baseAddress, $0.count,
                3)  // HANDLER_CAN_RWRITE
        }
        if let registration { netsnmp_register_scalar(registration) }
    }

    static func adminStatusHandler(
        _ handler: UnsafeMutablePointer<netsnmp_mib_handler>?,
        _ reginfo: UnsafeMutablePointer<netsnmp_handler_registration>?,
        _ reqinfo: UnsafeMutablePointer<netsnmp_agent_request_info>?,
        _ requests: UnsafeMutablePointer<netsnmp_request_info>?
    ) -> Int32 {
        guard let agent = SubAgent.current, let reqinfo else { return 5 }  // SNMP_ERR_GENERR
        var next = requests
        while let request = next {
            next = request.pointee.next
            guard let vb = request.pointee.requestvb else { continue }
            if let error = agent.adminStatusPhase(reqinfo.pointee.mode, vb) {
                netsnmp_set_request_error(reqinfo, request, error)
            }
        }
        return 0
    }

    /// One phase of a GET or SET of the admin status; returns an SNMP error status, or nil.
    func adminStatusPhase(_ mode: Int32, _ vb: UnsafeMutablePointer<netsnmp_variable_list>) -> Int32? {
        switch mode {
        case SubAgent.modeGet:
            SNMPValue.integer(adminStatus.rawValue).store(in: vb)
        case SubAgent.setReserve1:
            if vb.pointee.type != SNMPValue.typeInteger { return 7 }  // wrongType
            if vb.pointee.val_len != MemoryLayout<Int>.size { return 8 }  // wrongLength
            guard let p = vb.pointee.val.integer, UpdateAdminStatus(rawValue: Int32(clamping: p.pointee)) != nil
            else { return 10 }  // wrongValue
        case SubAgent.setReserve2:
            adminStatusUndo = adminStatus
        case SubAgent.setAction:
            guard let p = vb.pointee.val.integer, let wanted = UpdateAdminStatus(rawValue: Int32(clamping: p.pointee))
            else { return 10 }
            guard applyAdminStatus(wanted) else { return 13 }  // resourceUnavailable: not persisted, not applied
            adminStatus = wanted
        case SubAgent.setUndo:
            if let old = adminStatusUndo, old != adminStatus, applyAdminStatus(old) { adminStatus = old }
            adminStatusUndo = nil
        case SubAgent.setCommit, SubAgent.setFree:
            adminStatusUndo = nil
        default:
            break
        }
        return nil
    }
}
