// libFuzzer target: bounded zlib inflate, whole and streaming. Built by bench/fuzz.sh.
import EquicastCompression

@_cdecl("LLVMFuzzerTestOneInput")
public func inflateFuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> Int32 {
    guard size > 1 else { return 0 }
    let limit = Int(data[0]) * 256
    let input = Array(UnsafeBufferPointer(start: data + 1, count: size - 1))
    let limits = InflateLimits(outputByteCountMax: limit, ratioMax: data[0] & 1 == 0 ? 50 : nil)
    if let out = try? Zlib.inflate(input, limits: limits) {
        precondition(out.count <= limit, "inflate exceeded its output limit")
        precondition((try? Zlib.inflate(Zlib.deflate(out), limits: .untrusted)) == out, "round trip differs")
    }
    // The same input fed in 7-byte pieces must never produce more than the limit either.
    let inflater = Inflater(limits: limits)
    var produced = 0
    var i = 0
    while i < input.count {
        do {
            try inflater.decompress(Array(input[i..<min(input.count, i + 7)])) { produced += $0.count }
        } catch {
            break
        }
        i += 7
    }
    precondition(produced <= limit, "streaming inflate exceeded its output limit")
    return 0
}
