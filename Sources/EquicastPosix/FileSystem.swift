import CEquicastShims

/// File operations of the agent's state directory. Every write that matters is atomic: a power cut leaves
/// either the old file or the new one, never a mixture (temp file, fsync, rename, fsync of the directory).
public enum FileSystem {
    /// Reads a whole regular file of at most `limit` bytes.
    public static func readFile(_ path: String, limit: Int) throws(PosixError) -> [UInt8] {
        let fd = try openFile(path, flags: O_RDONLY, mode: 0)
        defer { close(fd) }
        var mode: UInt32 = 0
        var size: UInt64 = 0
        let kind = equicast_fstat_mode_size(fd, &mode, &size)
        if kind < 0 { throw .file(path: path, operation: "stat", errno: equicast_errno()) }
        if kind != 0 { throw .notRegularFile(path: path) }
        if size > UInt64(limit) { throw .fileTooLarge(path: path, size: size, limit: limit) }
        return try readAll(fd, path: path, expected: Int(size), limit: limit)
    }

    /// Permission bits of a file (e.g. 0o600).
    public static func permissions(_ path: String) throws(PosixError) -> UInt32 {
        let fd = try openFile(path, flags: O_RDONLY, mode: 0)
        defer { close(fd) }
        var mode: UInt32 = 0
        var size: UInt64 = 0
        if equicast_fstat_mode_size(fd, &mode, &size) < 0 {
            throw .file(path: path, operation: "stat", errno: equicast_errno())
        }
        return mode
    }

    /// Replaces `path` with `bytes` atomically, creating it with `mode` (umask still applies).
    /// On any failure the previous content of `path` is untouched and the temporary file is removed.
    public static func writeFileAtomically(_ path: String, _ bytes: [UInt8], mode: UInt32 = 0o644) throws(PosixError) {
        let temp = path + ".tmp"
        let fd = try openFile(temp, flags: O_WRONLY | O_CREAT | O_TRUNC, mode: mode)
        do throws(PosixError) {
            try writeAll(fd, bytes, path: temp)
            if fsync(fd) != 0 { throw PosixError.file(path: temp, operation: "fsync", errno: equicast_errno()) }
            // fchmod: a temp file left by an earlier crash may carry other permissions.
            if fchmod(fd, mode_t(mode)) != 0 {
                throw PosixError.file(path: temp, operation: "chmod", errno: equicast_errno())
            }
        } catch {
            close(fd)
            unlink(temp)
            throw error
        }
        close(fd)
        if rename(temp, path) != 0 {
            let code = equicast_errno()
            unlink(temp)
            throw .file(path: path, operation: "rename into place", errno: code)
        }
        try syncDirectory(containing: path)
    }

    /// Removes a file; a missing file is not an error.
    public static func remove(_ path: String) throws(PosixError) {
        if unlink(path) != 0 {
            let code = equicast_errno()
            if code != ENOENT { throw .file(path: path, operation: "remove", errno: code) }
        }
    }

    /// True when `path` exists (any kind of file).
    public static func exists(_ path: String) -> Bool { access(path, F_OK) == 0 }

    /// Creates a directory with `mode` unless it exists already.
    public static func makeDirectory(_ path: String, mode: UInt32 = 0o700) throws(PosixError) {
        if mkdir(path, mode_t(mode)) != 0 {
            let code = equicast_errno()
            if code != EEXIST { throw .file(path: path, operation: "create directory", errno: code) }
        }
    }

    /// Locks `directory` for this process until it exits (`directory/lock`, holding the process id), so that two
    /// agents never share a state directory; throws `locked` naming the holder's pid when another has it.
    /// Returns the lock's descriptor, which the caller keeps open.
    public static func lockDirectory(_ directory: String) throws(PosixError) -> Int32 {
        let path = directory + "/lock"
        var holder = 0
        let fd = equicast_lock_file(path, &holder)
        if fd >= 0 { return fd }
        let code = equicast_errno()
        if equicast_errno_is_would_block(code) != 0 { throw .locked(directory: directory, holder: holder) }
        throw .file(path: path, operation: "lock", errno: code)
    }

    /// Bytes free for an unprivileged writer on the file system that holds `path`.
    public static func freeBytes(_ path: String) throws(PosixError) -> UInt64 {
        var bytes: UInt64 = 0
        if equicast_free_bytes(path, &bytes) != 0 {
            throw .file(path: path, operation: "statvfs", errno: equicast_errno())
        }
        return bytes
    }

    /// Size in bytes of a regular file, or nil when there is none.
    public static func size(_ path: String) -> UInt64? {
        guard let fd = try? openFile(path, flags: O_RDONLY, mode: 0) else { return nil }
        defer { close(fd) }
        var mode: UInt32 = 0
        var size: UInt64 = 0
        return equicast_fstat_mode_size(fd, &mode, &size) == 0 ? size : nil
    }

    static func openFile(_ path: String, flags: Int32, mode: UInt32) throws(PosixError) -> Int32 {
        while true {
            let fd = equicast_open(path, flags, mode)
            if fd >= 0 { return fd }
            let code = equicast_errno()
            if code == EINTR { continue }
            throw .file(path: path, operation: "open", errno: code)
        }
    }

    /// Reads to the end of the file. The stat size `expected` is read straight into an array of that size (a
    /// chunk read to serve it costs no copy); a file that turns out longer is read on in blocks, up to `limit`.
    static func readAll(_ fd: Int32, path: String, expected: Int, limit: Int) throws(PosixError) -> [UInt8] {
        var failure: PosixError?
        var out = [UInt8](unsafeUninitializedCapacity: expected) { buffer, count in
            count = 0
            while count < expected {
                let n = read(fd, buffer.baseAddress! + count, expected - count)
                if n == 0 { break }
                if n < 0 {
                    let code = equicast_errno()
                    if code == EINTR { continue }
                    failure = .file(path: path, operation: "read", errno: code)
                    return
                }
                count += n
            }
        }
        if let failure { throw failure }
        if out.count < expected { return out }  // shrank while being read
        var block = [UInt8](repeating: 0, count: 4096)
        while true {
            let n = block.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
            if n == 0 { return out }
            if n < 0 {
                let code = equicast_errno()
                if code == EINTR { continue }
                throw .file(path: path, operation: "read", errno: code)
            }
            out.append(contentsOf: block[0..<n])
            // The file grew while being read: refuse rather than read without bound.
            if out.count > limit { throw .fileTooLarge(path: path, size: UInt64(out.count), limit: limit) }
        }
    }

    static func writeAll(_ fd: Int32, _ bytes: [UInt8], path: String) throws(PosixError) {
        var offset = 0
        while offset < bytes.count {
            let n = bytes.withUnsafeBytes { write(fd, $0.baseAddress! + offset, $0.count - offset) }
            if n < 0 {
                let code = equicast_errno()
                if code == EINTR { continue }
                throw .file(path: path, operation: "write", errno: code)
            }
            offset += n
        }
    }

    /// Puts a file written through `fd` (open on `temp`) in place: fsync, close (`fd` becomes -1), rename over
    /// `destination`, fsync of the directory. A failed fsync leaves `fd` open for the caller to clean up; a
    /// failed rename removes `temp`.
    static func syncAndRename(_ fd: inout Int32, _ temp: String, to destination: String) throws(PosixError) {
        if fsync(fd) != 0 { throw .file(path: temp, operation: "fsync", errno: equicast_errno()) }
        close(fd)
        fd = -1
        if rename(temp, destination) != 0 {
            let code = equicast_errno()
            unlink(temp)
            throw .file(path: destination, operation: "rename into place", errno: code)
        }
        try syncDirectory(containing: destination)
    }

    /// fsync of the directory makes the rename itself durable.
    static func syncDirectory(containing path: String) throws(PosixError) {
        let utf8 = Array(path.utf8)
        var dir = "."
        if let slash = utf8.lastIndex(of: UInt8(ascii: "/")) {
            dir = slash == 0 ? "/" : String(decoding: utf8[0..<slash], as: UTF8.self)
        }
        let fd = try openFile(dir, flags: O_RDONLY | O_DIRECTORY, mode: 0)
        defer { close(fd) }
        if fsync(fd) != 0 { throw .file(path: dir, operation: "fsync directory", errno: equicast_errno()) }
    }
}

/// A file written piece by piece and put in place atomically: the pieces go to `path.tmp`, and `commit` fsyncs
/// it and renames it over `path`. Dropped without `commit`, the temporary file is removed.
public final class AtomicFileWriter {
    public let path: String
    let temp: String
    var fd: Int32

    public init(path: String, mode: UInt32 = 0o644) throws(PosixError) {
        self.path = path
        self.temp = path + ".tmp"
        fd = try FileSystem.openFile(temp, flags: O_WRONLY | O_CREAT | O_TRUNC, mode: mode)
    }

    deinit {
        if fd >= 0 {
            close(fd)
            unlink(temp)
        }
    }

    public func write(_ bytes: [UInt8]) throws(PosixError) {
        try FileSystem.writeAll(fd, bytes, path: temp)
    }

    public func commit() throws(PosixError) {
        try FileSystem.syncAndRename(&fd, temp, to: path)
    }
}

/// A file written at offsets, in any order, then read back in order and put in place: the image of a release,
/// built while its chunks arrive. Created empty (an earlier partial file is truncated); dropped without
/// `commit`, it is removed.
public final class PositionedFile {
    public let path: String
    var fd: Int32

    public init(creating path: String, mode: UInt32 = 0o600) throws(PosixError) {
        self.path = path
        fd = try FileSystem.openFile(path, flags: O_RDWR | O_CREAT | O_TRUNC, mode: mode)
    }

    deinit {
        if fd >= 0 {
            close(fd)
            unlink(path)
        }
    }

    /// Writes all of `bytes` at `offset`.
    public func write(_ bytes: [UInt8], at offset: UInt64) throws(PosixError) {
        var done = 0
        while done < bytes.count {
            let n = bytes.withUnsafeBytes {
                equicast_pwrite(fd, $0.baseAddress! + done, UInt($0.count - done), offset + UInt64(done))
            }
            if n < 0 {
                let code = equicast_errno()
                if code == EINTR { continue }
                throw .file(path: path, operation: "write", errno: code)
            }
            done += n
        }
    }

    /// Fills `buffer` from `offset` as far as the file goes; returns the count read (short only at the end).
    public func read(into buffer: inout [UInt8], at offset: UInt64) throws(PosixError) -> Int {
        var done = 0
        while done < buffer.count {
            let n = buffer.withUnsafeMutableBytes {
                equicast_pread(fd, $0.baseAddress! + done, UInt($0.count - done), offset + UInt64(done))
            }
            if n == 0 { break }
            if n < 0 {
                let code = equicast_errno()
                if code == EINTR { continue }
                throw .file(path: path, operation: "read", errno: code)
            }
            done += n
        }
        return done
    }

    /// fsync, then renames the file to `destination` and makes the rename durable.
    public func commit(to destination: String) throws(PosixError) {
        try FileSystem.syncAndRename(&fd, path, to: destination)
    }
}
