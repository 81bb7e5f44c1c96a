// libFuzzer target: release files and signed manifests from anyone: the .eqr container, the manifest's
// signature and body, and the whole-file verification `rollout push` runs. Built by bench/fuzz.sh. Mode byte:
// bit 0 picks whole file or manifest alone.
import EquicastCore
import EquicastCrypto

@_cdecl("LLVMFuzzerInitialize")
public func releaseFuzzSeeds(
    _ argc: UnsafeMutablePointer<Int32>,
    _ argv: UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?>
) -> Int32 {
    let (file, manifest) = FuzzSeeds.release()
    FuzzSeeds.write([[0] + file, [1] + manifest])
    return 0
}

@_cdecl("LLVMFuzzerTestOneInput")
public func releaseFuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> Int32 {
    guard size > 0 else { return 0 }
    let bytes = Array(UnsafeBufferPointer(start: data + 1, count: size - 1))
    let keys = [FuzzSeeds.releaseKey.publicKey]
    if data[0] & 1 == 0 {
        if let parts = try? ReleaseFile.split(bytes) {
            precondition(parts.chunks.allSatisfy { $0.upperBound <= bytes.count }, "chunk range past the file")
        }
        if let signed = try? ReleaseFile.verify(bytes, trustedKeys: keys) {
            precondition(signed.manifest.chunks.count <= ReleaseManifest.chunksMax, "too many chunks accepted")
        }
    } else {
        _ = try? SignedManifest.inspect(bytes)
        if let signed = try? SignedManifest.open(bytes, trustedKeys: keys) {
            precondition(signed.bytes == bytes, "opened manifest is not its bytes")
        }
    }
    return 0
}
