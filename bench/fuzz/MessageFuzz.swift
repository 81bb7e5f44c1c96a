// libFuzzer target: the membership and transfer message decoders, on their own (many executions a second).
// Built by bench/fuzz.sh. Mode byte: bit 0 picks the decoder; what decodes must encode back to the same bytes'
// meaning (decode(encode(m)) == m).
import EquicastCore
import EquicastCrypto

@_cdecl("LLVMFuzzerInitialize")
public func messageFuzzSeeds(
    _ argc: UnsafeMutablePointer<Int32>,
    _ argv: UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?>
) -> Int32 {
    FuzzSeeds.write(FuzzSeeds.membershipMessages().map { [0] + $0 } + FuzzSeeds.transferMessages().map { [1] + $0 })
    return 0
}

@_cdecl("LLVMFuzzerTestOneInput")
public func messageFuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> Int32 {
    guard size > 0 else { return 0 }
    let bytes = Array(UnsafeBufferPointer(start: data + 1, count: size - 1))
    if data[0] & 1 == 0 {
        if let m = try? Message.decode(bytes, itemsMax: data[0] & 2 == 0 ? Message.datagramItemsMax : 1 << 20) {
            precondition((try? Message.decode(m.encode(), itemsMax: 1 << 20)) == m, "membership message round trip")
        }
    } else if let m = try? TransferMessage.decode(bytes) {
        precondition((try? TransferMessage.decode(m.encode())) == m, "transfer message round trip")
    }
    return 0
}
