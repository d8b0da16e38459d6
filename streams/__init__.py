"""The Faust stream: Clover orders into locker order events per store."""
