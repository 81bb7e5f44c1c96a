// libFuzzer target: what the agent reads from files and from the control socket: the config file, node.state,
// the update record, key files, and control request lines. Built by bench/fuzz.sh (with the agent module).
// Mode byte: which reader.
import EquicastCrypto

@testable import EquicastAgent

#if canImport(Glibc)
    import Glibc
#endif

@_cdecl("LLVMFuzzerInitialize")
public func agentFuzzSeeds(
    _ argc: UnsafeMutablePointer<Int32>,
    _ argv: UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?>
) -> Int32 {
    guard let dir = getenv("FUZZ_SEED_DIR").map({ String(cString: $0) }) else { return 0 }
    let seeds: [(UInt8, String)] = [
        (
            0,
            "ListenAddress = 0.0.0.0:7946\nSeeds = 10.0.0.1:7946, 10.0.0.2:7946\nProbeInterval = 1000\nMembersMax = 5000\n"
        ),
        (0, "FleetKeyFile = /etc/equicast/fleet.key\nEncryptionEnabled = true\nLogLevel = debug\nRingSize = 4\n"),
        (1, "id = 00000000000000ff\nboots = 7\n"),
        (2, "installed=3\nstate=downloading\nrelease=" + String(repeating: "ab", count: 32) + "\nrejected=\n"),
        (3, String(repeating: "0f", count: 32) + "\n"),
        (3, "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=\n"),
        (4, "status"), (4, "members"), (4, "broadcast hello"),
    ]
    for (i, (mode, text)) in seeds.enumerated() {
        guard let f = fopen("\(dir)/seed-\(i)", "wb") else { continue }
        let bytes = [mode] + Array(text.utf8)
        _ = bytes.withUnsafeBytes { fwrite($0.baseAddress, 1, $0.count, f) }
        fclose(f)
    }
    return 0
}

@_cdecl("LLVMFuzzerTestOneInput")
public func agentFuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> Int32 {
    guard size > 0 else { return 0 }
    let bytes = Array(UnsafeBufferPointer(start: data + 1, count: size - 1))
    let text = String(decoding: bytes, as: UTF8.self)
    switch data[0] % 5 {
    case 0:
        var config = AgentConfig()
        try? config.apply(fileText: text, source: "fuzz.conf")
    case 1:
        if let state = NodeState(text: text) {
            precondition(
                NodeState(text: state.text).map { $0.id == state.id && $0.bootCount == state.bootCount } == true,
                "node.state round trip")
        }
    case 2:
        if let record = UpdateRecord(text: text) {
            precondition(UpdateRecord(text: record.text) == record, "update record round trip")
        }
    case 3:
        for count in [32, 64] {
            if let key = try? KeyText.decode(bytes, byteCount: count) {
                precondition(key.count == count, "key of the wrong size")
                precondition((try? KeyText.decode(KeyText.encodeHex(key), byteCount: count)) == key, "key round trip")
            }
        }
    default:
        if case .broadcast(let payload) = ControlProtocol.Request(line: bytes) {
            precondition(!payload.isEmpty && payload.count <= 512, "broadcast payload out of bounds")
        }
    }
    return 0
}
