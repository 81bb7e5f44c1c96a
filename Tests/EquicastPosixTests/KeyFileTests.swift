import EquicastCrypto
import EquicastPosix
import Foundation
import Testing

/// A fresh directory under /tmp, removed when the test ends.
final class TemporaryDirectory {
    let path: String
    init() {
        path = NSTemporaryDirectory() + "equicast-test-" + UUID().uuidString
        try! FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    }
    deinit { try? FileManager.default.removeItem(atPath: path) }

    func write(_ name: String, _ text: String, mode: Int) -> String {
        let file = path + "/" + name
        _ = FileManager.default.createFile(
            atPath: file, contents: Data(text.utf8), attributes: [.posixPermissions: mode])
        return file
    }
}

@Suite struct KeyFileTests {
    static let hexKey = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f"

    @Test func storeThenLoadSecretKey() throws {
        let dir = TemporaryDirectory()
        let key = SymmetricKey.generate()
        let path = dir.path + "/fleet.key"
        try KeyFile.store(key.exportBytes(), to: path, secret: true)
        #expect(try FileSystem.permissions(path) == 0o600)
        #expect(try KeyFile.loadSymmetric(path).exportBytes() == key.exportBytes())
    }

    @Test func refusesToOverwriteAnExistingKey() throws {
        let dir = TemporaryDirectory()
        let path = dir.write("release.key", KeyFileTests.hexKey, mode: 0o600)
        #expect(
            throws: PosixError.file(path: path, operation: "refusing to overwrite existing key file", errno: EEXIST)
        ) {
            try KeyFile.store([UInt8](repeating: 9, count: 32), to: path, secret: true)
        }
        #expect(try KeyFile.loadSecret(path, byteCount: 32) == (0..<32).map { UInt8($0) })
    }

    @Test(arguments: [0o644, 0o640, 0o604, 0o660, 0o777])
    func refusesSecretReadableByOthers(mode: Int) {
        let dir = TemporaryDirectory()
        let path = dir.write("fleet.key", KeyFileTests.hexKey, mode: mode)
        #expect(throws: PosixError.insecurePermissions(path: path, mode: UInt32(mode))) {
            try KeyFile.loadSecret(path, byteCount: 32)
        }
    }

    @Test func publicKeysMayBeWorldReadable() throws {
        let dir = TemporaryDirectory()
        let path = dir.write("release.pub", KeyFileTests.hexKey + "\n", mode: 0o644)
        #expect(try KeyFile.loadPublic(path, byteCount: 32).count == 32)
    }

    @Test(arguments: [
        (
            "short.key", String(hexKey.dropLast(4)),
            CryptoError.malformedKeyText("hex key has 60 digits; a 32-byte key needs 64")
        ),
        (
            "text.key", "this is not a key at all",
            .malformedKeyText("unexpected whitespace at character 5; expected one key on one line")
        ),
        ("punct.key", "not-a-key!", .malformedKeyText("character 4 is neither hex nor base64")),
        ("empty.key", "", .malformedKeyText("the file is empty")),
        ("b64.key", "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwd", .wrongLength(what: "key", expected: 32, found: 30)),
    ])
    func refusesMalformedContent(name: String, text: String, reason: CryptoError) {
        let dir = TemporaryDirectory()
        let path = dir.write(name, text, mode: 0o600)
        #expect(throws: PosixError.badKeyFile(path: path, reason: reason)) {
            try KeyFile.loadSecret(path, byteCount: 32)
        }
    }

    @Test func missingFileNamesThePath() {
        #expect(throws: PosixError.file(path: "/nonexistent/fleet.key", operation: "open", errno: ENOENT)) {
            try KeyFile.loadSecret("/nonexistent/fleet.key", byteCount: 32)
        }
    }

    @Test func oversizedFileIsRefusedWithoutReadingIt() {
        let dir = TemporaryDirectory()
        let path = dir.write("huge.key", String(repeating: "a", count: 10_000), mode: 0o600)
        #expect(throws: PosixError.fileTooLarge(path: path, size: 10_000, limit: 512)) {
            try KeyFile.loadSecret(path, byteCount: 32)
        }
    }

    @Test func directoryIsNotAKeyFile() {
        let dir = TemporaryDirectory()
        // A 0700 directory passes the permission check; it must then be refused as not a regular file.
        chmod(dir.path, 0o700)
        #expect(throws: PosixError.notRegularFile(path: dir.path)) { try KeyFile.loadSecret(dir.path, byteCount: 32) }
    }

    @Test func errorMessagesTellTheOperatorWhatToDo() {
        let text = PosixError.insecurePermissions(path: "/etc/equicast/fleet.key", mode: 0o644).description
        #expect(text.contains("0644"))
        #expect(text.contains("chmod 600 /etc/equicast/fleet.key"))
    }
}

@Suite struct AtomicWriteTests {
    @Test func replacesContentAndLeavesNoTemporaryFile() throws {
        let dir = TemporaryDirectory()
        let path = dir.path + "/state"
        try FileSystem.writeFileAtomically(path, Array("one".utf8))
        try FileSystem.writeFileAtomically(path, Array("two".utf8), mode: 0o600)
        #expect(try FileSystem.readFile(path, limit: 100) == Array("two".utf8))
        #expect(try FileSystem.permissions(path) == 0o600)
        #expect(try FileManager.default.contentsOfDirectory(atPath: dir.path) == ["state"])
    }

    @Test func failedWriteLeavesTheOldFileIntact() throws {
        let dir = TemporaryDirectory()
        let path = dir.path + "/state"
        try FileSystem.writeFileAtomically(path, Array("committed".utf8))
        // A directory where the temp file should go makes the write fail part-way.
        try FileManager.default.createDirectory(atPath: path + ".tmp", withIntermediateDirectories: false)
        #expect(throws: PosixError.self) { try FileSystem.writeFileAtomically(path, Array("half".utf8)) }
        #expect(try FileSystem.readFile(path, limit: 100) == Array("committed".utf8))
    }

    @Test func readRefusesFilesOverTheLimit() throws {
        let dir = TemporaryDirectory()
        let path = dir.path + "/big"
        try FileSystem.writeFileAtomically(path, [UInt8](repeating: 1, count: 1000))
        #expect(throws: PosixError.fileTooLarge(path: path, size: 1000, limit: 999)) {
            try FileSystem.readFile(path, limit: 999)
        }
    }
}
