"""What both front ends call: doctor/ (one host), recipes/, hosts/ (many hosts)."""
