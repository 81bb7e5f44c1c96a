// libFuzzer target: the frame decoder (datagram and stream) and the stream framer. Built by bench/fuzz.sh.
import EquicastCore
import EquicastCrypto

let fuzzKeyring = try! FleetKeyring(primary: FleetKey(master: try! SymmetricKey(bytes: (0..<32).map { UInt8($0) })))

@_cdecl("LLVMFuzzerTestOneInput")
public func frameFuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> Int32 {
    guard size > 0 else { return 0 }
    let mode = data[0] % 3
    let bytes = Array(UnsafeBufferPointer(start: data + 1, count: size - 1))
    var opener = FrameOpener(keyring: fuzzKeyring, requireEncryption: data[0] & 0x80 == 0, senderCapacity: 4)
    switch mode {
    case 0, 1:
        if let frame = try? opener.open(bytes, transport: mode == 0 ? .datagram : .stream) {
            // An accepted frame must be self-consistent: payload plus overhead is the whole input.
            precondition(frame.payload.count + Frame.overheadByteCount == bytes.count, "accepted inconsistent frame")
            // And replaying it on the same transport must be refused (datagrams and streams keep separate
            // windows: a frame of one is never a message the other carries).
            precondition(
                (try? opener.open(bytes, transport: mode == 0 ? .datagram : .stream)) == nil, "replay accepted")
        }
    default:
        var framer = StreamFramer(bodyLimit: 4096)
        var i = 0
        let step = max(1, Int(data[0] >> 2))
        while i < bytes.count {
            framer.append(Array(bytes[i..<min(bytes.count, i + step)]))
            i += step
            do {
                while let f = try framer.nextFrame() {
                    precondition(f.count >= Frame.overheadByteCount && f.count <= Frame.headerByteCount + 4096)
                    _ = try? opener.open(f, transport: .stream)
                }
            } catch {
                return 0
            }
        }
    }
    return 0
}
