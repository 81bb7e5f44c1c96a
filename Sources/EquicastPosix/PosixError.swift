import CEquicastShims
import EquicastCrypto

/// Everything the POSIX layer reports. System call failures carry errno and the call's name; file problems carry
/// the path, so a message tells the operator which file to look at.
public enum PosixError: Error, Equatable, CustomStringConvertible {
    /// A system call failed with `errno`.
    case syscall(name: String, errno: Int32)
    /// A file call failed for `path`.
    case file(path: String, operation: String, errno: Int32)
    /// A file is larger than its reader allows.
    case fileTooLarge(path: String, size: UInt64, limit: Int)
    /// A path is not a regular file.
    case notRegularFile(path: String)
    /// A secret file can be read by group or others.
    case insecurePermissions(path: String, mode: UInt32)
    /// A key file's contents were not a valid key.
    case badKeyFile(path: String, reason: CryptoError)
    /// Text that should be an address was not.
    case invalidAddress(String)
    /// Not enough free space to write a file safely.
    case noSpace(path: String, needed: UInt64, available: UInt64)
    /// A control socket's path names a file that is not a socket (left untouched).
    case notASocket(path: String)
    /// A process already listens on a control socket's path.
    case socketInUse(path: String)
    /// Another process holds the lock on a state directory.
    case locked(directory: String, holder: Int)

    public var description: String {
        switch self {
        case .syscall(let name, let code):
            return "\(name) failed: \(errorText(code))"
        case .file(let path, let operation, let code):
            return "\(operation) \(path): \(errorText(code))"
        case .fileTooLarge(let path, let size, let limit):
            return "\(path) is \(size) bytes, more than the \(limit) this file may have"
        case .notRegularFile(let path):
            return "\(path) is not a regular file"
        case .insecurePermissions(let path, let mode):
            return "\(path) has mode \(octal(mode)); a secret key file must not be readable by group or others "
                + "(chmod 600 \(path))"
        case .badKeyFile(let path, let reason):
            return "\(path): \(reason)"
        case .invalidAddress(let text):
            return "'\(text)' is not an IPv4 or IPv6 address with a port (e.g. 192.0.2.1:7946 or [::1]:7946)"
        case .noSpace(let path, let needed, let available):
            return "not enough space to write \(path): \(needed) bytes needed, \(available) available"
        case .notASocket(let path):
            return "\(path) exists and is not a socket; it was left as it is (choose another ControlSocket path "
                + "or move the file away)"
        case .socketInUse(let path):
            return "another process is listening on \(path) (a second equicastd?); stop it or choose another "
                + "ControlSocket path"
        case .locked(let directory, let holder):
            return "\(directory) is in use by another equicastd"
                + (holder > 0 ? " (pid \(holder))" : "") + "; each agent needs a StateDirectory of its own"
        }
    }
}

/// The C library's text for an errno value.
public func errorText(_ code: Int32) -> String {
    guard let text = strerror(code) else { return "errno \(code)" }
    return String(cString: text) + " (errno \(code))"
}

func octal(_ mode: UInt32) -> String {
    var digits = ""
    var m = mode & 0o7777
    for _ in 0..<4 {
        digits = String(Character(Unicode.Scalar(UInt8(0x30 + m % 8)))) + digits
        m /= 8
    }
    return digits
}

/// Calls `body` until it stops failing with EINTR; a failure becomes `PosixError.syscall` with the call's name.
/// This is the one place the layer handles EINTR.
@inline(__always)
func retryingSyscall<T: BinaryInteger>(_ name: String, _ body: () -> T) throws(PosixError) -> T {
    while true {
        let result = body()
        if result >= 0 { return result }
        let code = equicast_errno()
        if code == EINTR { continue }
        throw .syscall(name: name, errno: code)
    }
}
