//! omsup-exec
