//! omsup-journal
