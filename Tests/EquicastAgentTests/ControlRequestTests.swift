import Testing

@testable import EquicastAgent

/// Control request lines are parsed apart from answering them, so that any bytes can be fed to the parser
/// (bench/fuzz.sh, agent target): every line is a request or the line that refuses it.
@Suite struct ControlRequestTests {
    typealias Request = ControlProtocol.Request

    @Test func requestsAndRefusals() {
        #expect(Request(line: Array(" status\t".utf8)) == .status)
        #expect(Request(line: Array("members".utf8)) == .members)
        #expect(Request(line: Array("broadcast hello world".utf8)) == .broadcast(Array("hello world".utf8)))
        #expect(
            Request(line: Array("broadcast".utf8))
                == .refused(
                    "error\tunknown request 'broadcast' (status, members, broadcast TEXT)\n"))
        #expect(
            Request(line: Array("broadcast ".utf8) + [UInt8](repeating: 0x41, count: 513))
                == .refused("error\tbroadcast payload over 512 bytes\n"))
        // Bytes that are not UTF-8 are shown as replacement characters, never trusted as text.
        #expect(
            Request(line: [0xff, 0xfe])
                == .refused("error\tunknown request '\u{FFFD}\u{FFFD}' (status, members, broadcast TEXT)\n"))
    }
}
