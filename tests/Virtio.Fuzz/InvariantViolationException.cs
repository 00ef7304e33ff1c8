using System;

namespace Virtio.Fuzz;

/// <summary>A fuzz target found library code breaking one of the invariants it checks.</summary>
public sealed class InvariantViolationException : Exception
{
    /// <summary>Creates the exception with no message.</summary>
    public InvariantViolationException()
    {
    }

    /// <summary>Creates the exception with the invariant that broke.</summary>
    /// <param name="message">What broke.</param>
    public InvariantViolationException(string message)
        : base(message)
    {
    }

    /// <summary>Creates the exception with the invariant that broke and what caused it.</summary>
    /// <param name="message">What broke.</param>
    /// <param name="innerException">What library code threw.</param>
    public InvariantViolationException(string message, Exception innerException)
        : base(message, innerException)
    {
    }
}
