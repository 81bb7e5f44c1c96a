import CNetSNMP

/// A net-snmp node handler, as a C function pointer.
typealias MIBHandler =
    @convention(c) (
        UnsafeMutablePointer<netsnmp_mib_handler>?, UnsafeMutablePointer<netsnmp_handler_registration>?,
        UnsafeMutablePointer<netsnmp_agent_request_info>?, UnsafeMutablePointer<netsnmp_request_info>?
    ) -> Int32

/// A conceptual table served through net-snmp's tdata helper: net-snmp keeps the rows' indexes in a sorted
/// container and answers GETNEXT and GETBULK across rows and columns itself; our column handler is asked only
/// for one column of one row at a time. A row's data is its position in the snapshot's array, so replacing the
/// rows never copies the values.
final class MIBTable {
    let table: UnsafeMutablePointer<netsnmp_tdata>
    let indexType: UInt8
    private(set) var rowCount = 0

    /// Registers the table at `oid` (the table's OID; entries are under it at .1). Returns nil if net-snmp is out of memory.
    init?(name: String, oid: [oid], columns: ClosedRange<UInt32>, indexType: UInt8, handler: MIBHandler) {
        guard let t = netsnmp_tdata_create_table(name, 0),
            let info = equicast_table_info_new(columns.lowerBound, columns.upperBound)
        else { return nil }
        equicast_table_add_index(info, indexType)
        let registration = oid.withUnsafeBufferPointer {
            netsnmp_create_handler_registration(name, handler, $0.baseAddress, $0.count, 1)  // HANDLER_CAN_RONLY
        }
        guard let registration, netsnmp_tdata_register(registration, t, info) == 0 else { return nil }
        table = t
        self.indexType = indexType
    }

    /// Replaces every row by rows with these octet-string indexes (row i serves the snapshot's element i).
    func replaceRows(_ indexes: [[UInt8]]) {
        removeAll()
        for (i, bytes) in indexes.enumerated() {
            guard let row = netsnmp_tdata_create_row() else { return }
            row.pointee.data = UnsafeMutableRawPointer(bitPattern: i + 1)
            _ = bytes.withUnsafeBufferPointer {
                equicast_tdata_row_add_index(row, indexType, $0.baseAddress, $0.count)
            }
            if netsnmp_tdata_add_row(table, row) == 0 { rowCount += 1 }
        }
    }

    /// Replaces every row by rows with these integer indexes.
    func replaceRows(integerIndexes: [UInt32]) {
        removeAll()
        for (i, value) in integerIndexes.enumerated() {
            guard let row = netsnmp_tdata_create_row() else { return }
            row.pointee.data = UnsafeMutableRawPointer(bitPattern: i + 1)
            var v = UInt(value)
            _ = equicast_tdata_row_add_index(row, indexType, &v, MemoryLayout<UInt>.size)
            if netsnmp_tdata_add_row(table, row) == 0 { rowCount += 1 }
        }
    }

    private func removeAll() {
        while let row = netsnmp_tdata_row_first(table) { _ = netsnmp_tdata_remove_and_delete_row(table, row) }
        rowCount = 0
    }

    /// Answers a table's requests: `value(row, column)` for each (nil: no such instance).
    static func answer(
        _ reqinfo: UnsafeMutablePointer<netsnmp_agent_request_info>?,
        _ requests: UnsafeMutablePointer<netsnmp_request_info>?, _ value: (Int, UInt32) -> SNMPValue?
    ) -> Int32 {
        guard let reqinfo, reqinfo.pointee.mode == SubAgent.modeGet else { return 0 }
        var next = requests
        while let request = next {
            next = request.pointee.next
            if request.pointee.processed != 0 { continue }
            guard let entry = netsnmp_tdata_extract_entry(request), let info = netsnmp_extract_table_info(request),
                let v = value(Int(bitPattern: entry) - 1, info.pointee.colnum), let vb = request.pointee.requestvb
            else {
                netsnmp_set_request_error(reqinfo, request, SubAgent.noSuchInstance)
                continue
            }
            v.store(in: vb)
        }
        return 0
    }
}
